"""The benchmark of speculative methods inside vLLM (issue 11): plain vLLM, vLLM's ``ngram``,
vLLM's ``suffix`` (arctic-inference) and sufdec's proposer, at several concurrencies, in one
run and after a restart.

* ``plan``: workloads, prompts through the chat template, the model-own corpus (cached),
  the store built from it, and one job per vLLM engine;
* ``child``: one vLLM engine in its own process (``python -m sufdec.bench.vllm.child JOB``):
  the corpus, a warm-up, then every measured cell of that engine, one JSON line each;
* ``hooks``: a vLLM worker extension (``worker_extension_cls``) that times the proposer and
  puts a method's history back to the cell's start state between cells;
* ``report``: figures per cell, the output check against plain vLLM, the table.

Driven by ``scripts/bench_vllm.py``; usage and protocol in ``docs/VLLM.md`` ("Benchmark").
Everything runs in vLLM's own environment (``PYTHONPATH`` = this checkout).
"""
