"""One vLLM engine of the benchmark, in its own process (vLLM spawns processes, and a
restart must be a new process):

    python -m sufdec.bench.vllm.child JOB.json

The job (written by ``plan``) names the model, the method's engine arguments and a list of
tasks, run in order on one engine:

* ``corpus``: greedy outputs of the train prompts, all in flight at once, appended to a
  JSONL cache file as they finish;
* ``warmup``: a few requests, untimed (first-call costs: numba, allocators, the store);
* ``cell``: the eval prompts at a concurrency, after ``bench_reset`` (``hooks``) and a
  reset of vLLM's prefix cache, so every cell starts from the same state. One JSON line per
  cell is appended to the job's results file as soon as the cell ends.

Concurrency is the number of requests in flight: the loop feeds ``LLMEngine.add_request``
and steps the engine, adding the next prompt whenever one finishes (continuous batching,
as a server with that many clients sees). Tokens/s = generated tokens over the wall time
from the first request in to the last one out. Spec-decode counters come from vLLM's own
metrics (``LLM.get_metrics()``), differenced around the cell.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

SPEC_COUNTERS = ("num_drafts", "num_draft_tokens", "num_accepted_tokens")
_INDEX = re.compile(r"x(\d+)")


def _counters(llm: Any) -> dict[str, int]:
    out = {k: 0 for k in SPEC_COUNTERS}
    for m in llm.get_metrics():
        name = m.name.removeprefix("vllm:spec_decode_")
        if name in out and hasattr(m, "value"):
            out[name] += int(m.value)
    return out


def serve(
    llm: Any, prompts: list[list[int]], max_tokens: int, concurrency: int, tag: str, on_finish: Any = None
) -> tuple[list[Any], int, float]:
    """Greedy outputs of ``prompts`` with at most ``concurrency`` in flight; (outputs, engine
    steps, wall seconds)."""
    from vllm import SamplingParams

    engine = llm.llm_engine
    params = SamplingParams(temperature=0.0, max_tokens=max_tokens)
    queue = list(range(len(prompts)))
    queue.reverse()
    in_flight, outs, steps = 0, [None] * len(prompts), 0
    t0 = time.perf_counter()
    while queue or in_flight:
        while queue and in_flight < concurrency:
            i = queue.pop()
            engine.add_request(f"{tag}x{i}", {"prompt_token_ids": prompts[i]}, params)
            in_flight += 1
        steps += 1
        for out in engine.step():
            if out.finished:
                i = int(_INDEX.search(out.request_id.removeprefix(tag)).group(1))
                outs[i] = out
                in_flight -= 1
                if on_finish is not None:
                    on_finish(i, out)
    return outs, steps, time.perf_counter() - t0


def settle(llm: Any, prompt: list[int], corpus: Any = None) -> dict:
    """Between cells: let the worker hear of the last cell's finished requests (vLLM reports
    them at the next step: one step of a request that is then aborted, and aborted requests
    teach nothing), reset the method's history and vLLM's prefix cache."""
    from vllm import SamplingParams

    engine = llm.llm_engine
    engine.add_request("settle", {"prompt_token_ids": prompt}, SamplingParams(temperature=0.0, max_tokens=64))
    engine.step()
    engine.abort_request(["settle"])
    while engine.has_unfinished_requests():
        engine.step()
    done = llm.collective_rpc("bench_reset", args=(corpus,))[0]
    done["prefix_cache_reset"] = bool(llm.reset_prefix_cache())
    return done


def _engine(job: dict) -> Any:
    from vllm import LLM

    extra: dict[str, Any] = {}
    if job.get("speculative_config"):
        extra["speculative_config"] = job["speculative_config"]
    if job.get("worker_cls"):
        extra["worker_cls"] = job["worker_cls"]
    return LLM(
        model=job["model"],
        dtype="float32",
        enforce_eager=True,
        seed=0,
        max_model_len=job["max_model_len"],
        max_num_seqs=job["max_num_seqs"],
        disable_log_stats=False,
        worker_extension_cls="sufdec.bench.vllm.hooks.BenchHooks",
        **extra,
    )


def _corpus_task(llm: Any, job: dict, task: dict) -> None:
    path = Path(task["out"])
    path.parent.mkdir(parents=True, exist_ok=True)
    keys, prompts = task["keys"], task["prompts"]
    with open(path, "a", encoding="utf-8") as f:

        def keep(i: int, out: Any) -> None:
            f.write(json.dumps({"prompt": keys[i], "tokens": list(out.outputs[0].token_ids)}) + "\n")
            f.flush()

        _, _, wall = serve(llm, prompts, job["max_tokens"], task["concurrency"], "corpus", keep)
    print(f"[bench-vllm] corpus: {len(prompts)} outputs in {wall:.0f} s", flush=True)


def _cell(llm: Any, job: dict, task: dict, eval_prompts: list[list[int]], corpus: Any) -> dict:
    reset = settle(llm, job["settle_prompt"], corpus if task.get("inject") else None)
    before, (calls0, secs0) = _counters(llm), llm.collective_rpc("bench_timing")[0]
    load0 = os.getloadavg()[0]
    tag = f"{task['phase']}c{task['concurrency']}"
    outs, steps, wall = serve(llm, eval_prompts, job["max_tokens"], task["concurrency"], tag)
    after, (calls1, secs1) = _counters(llm), llm.collective_rpc("bench_timing")[0]
    tokens = sum(len(o.outputs[0].token_ids) for o in outs)
    token_cost = llm.collective_rpc("bench_token_cost")[0]
    return {
        "workload": job["workload"],
        "method": job["method"],
        "phase": task["phase"],
        "label": task.get("label", job["method"]),
        "concurrency": task["concurrency"],
        "tokens": tokens,
        "wall_s": wall,
        "tokens_per_s": tokens / wall,
        "engine_steps": steps,
        "spec": {k: after[k] - before[k] for k in SPEC_COUNTERS},
        "propose_calls": calls1 - calls0,
        "propose_s": secs1 - secs0,
        "token_cost": token_cost,
        "reset": reset,
        "load_1m": [load0, os.getloadavg()[0]],
        "time": time.time(),
        "outputs": [list(o.outputs[0].token_ids) for o in outs],
        "finish": [o.outputs[0].finish_reason for o in outs],
    }


def main(job_file: str) -> None:
    job = json.loads(Path(job_file).read_text())
    eval_prompts = job["eval_prompts"]
    corpus = job.get("corpus")
    t0 = time.perf_counter()
    llm = _engine(job)
    start_s = time.perf_counter() - t0
    drafter = llm.collective_rpc("bench_install_timer")[0]
    print(f"[bench-vllm] {job['method']}: engine up in {start_s:.0f} s, drafter {drafter}", flush=True)
    results = Path(job["results"])
    for task in job["tasks"]:
        if task["kind"] == "corpus":
            _corpus_task(llm, job, task)
        elif task["kind"] == "warmup":
            serve(llm, task["prompts"], task.get("max_tokens", 32), len(task["prompts"]), "warm")
        elif task["kind"] == "cell":
            row = _cell(llm, job, task, eval_prompts, corpus)
            row["engine_start_s"] = start_s
            row["drafter"] = drafter
            with open(results, "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
            print(
                f"[bench-vllm] {row['label']} {row['phase']} c={row['concurrency']}: {row['tokens']} tokens, "
                f"{row['tokens_per_s']:.1f} tokens/s, spec {row['spec']}, reset {row['reset']}",
                flush=True,
            )
    del llm  # shuts the engine down (sufdec's worker flushes and closes the store)


if __name__ == "__main__":
    main(sys.argv[1])
