"""Move model-own corpora between the benchmarks, and turn one into exit-layer training data.

    # plain vLLM's greedy outputs (made by scripts/bench_vllm.py) into `sufdec bench`'s
    # corpus cache, so that `sufdec bench` does not generate them again with transformers
    python scripts/bench_corpora.py from-vllm --workload sharegpt --train 256

    # the train prompts and their model-own outputs as token ids, for `sufdec train-exit --data`
    python scripts/bench_corpora.py exit-data --workload sharegpt --train 256 --out /tmp/sharegpt-exit.jsonl

Both use `sufdec bench`'s split and prompt encoding (``sufdec.bench.workloads``), so the
train prompts are the ones `sufdec bench --train N` learns from and none of its eval
prompts. Outputs are keyed by a digest of the prompt ids in both caches; vLLM's outputs end
with the EOS token, `sufdec bench`'s do not. Greedy float32 outputs of the two engines agree
on most prompts but not all (see docs/BENCHMARKS.md); the converted cache says which engine
made it only through this script's line in the benchmark notes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _train_items(model_dir: str, workload: str, train: int, eval_n: int, max_new: int, root: Path):
    from sufdec.bench.workloads import load_workload, prepare_items, split
    from sufdec.engine.loading import load_model

    model, tok = load_model(model_dir, device="cpu", dtype="float32")
    examples = load_workload(workload, train, eval_n, cache_root=root)
    items, _ = prepare_items(tok, examples, 2048, model.config.max_position_embeddings, max_new)
    return model, tok, split(items, train, eval_n)[0]


def _bench_cache(model, model_dir: str, workload: str, max_new: int, root: Path) -> Path:
    from sufdec.bench.corpus import corpus_cache_file, default_corpus_cache, model_identity

    return corpus_cache_file(
        default_corpus_cache(root),
        model_name=model_identity(model, model_dir),
        workload=workload,
        max_new_tokens=max_new,
        dtype="float32",
        device_type="cpu",
    )


def main(argv: list[str] | None = None) -> int:
    import os

    from sufdec.bench.corpus import digest, read_corpus_cache
    from sufdec.models import default_cache_root

    root = default_cache_root(os.environ)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=("from-vllm", "exit-data"))
    p.add_argument("--workload", required=True)
    p.add_argument("--train", type=int, default=256)
    p.add_argument("--eval", type=int, default=32)
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--model", default=str(root / "models" / "SmolLM2-135M-Instruct"))
    p.add_argument("--vllm-cache", type=Path, default=root / "bench-vllm" / "corpora")
    p.add_argument("--out", type=Path, help="exit-data: the JSONL to write")
    a = p.parse_args(argv)
    model, tok, train = _train_items(a.model, a.workload, a.train, a.eval, a.max_new_tokens, root)
    cache = _bench_cache(model, a.model, a.workload, a.max_new_tokens, root)
    keys = [digest(it.prompt_ids) for it in train]
    if a.what == "from-vllm":
        found = sorted(a.vllm_cache.glob(f"{a.workload}-*.jsonl"))
        if not found:
            p.error(f"no {a.workload} corpus in {a.vllm_cache}: run scripts/bench_vllm.py first")
        known = read_corpus_cache(found[-1])
        eos = tok.eos_token_id
        cache.parent.mkdir(parents=True, exist_ok=True)
        with open(cache, "a", encoding="utf-8") as f:
            for k in keys:
                if k in known:
                    out = list(known[k])
                    while out and out[-1] == eos:
                        out.pop()
                    f.write(json.dumps({"prompt": k, "tokens": out}) + "\n")
        print(f"{sum(k in known for k in keys)} of {len(keys)} train outputs from {found[-1].name} -> {cache}")
        return 0
    if a.out is None:
        p.error("exit-data needs --out")
    if not cache.is_file():
        p.error(f"no corpus for {a.workload} in {cache.parent}: run `sufdec bench` (or from-vllm) first")
    known = read_corpus_cache(cache)
    with open(a.out, "w", encoding="utf-8") as f:
        n = tokens = 0
        for it, k in zip(train, keys):
            if k in known and known[k]:
                f.write(json.dumps({"prompt_token_ids": it.prompt_ids, "token_ids": known[k]}) + "\n")
                n, tokens = n + 1, tokens + len(known[k])
    print(f"{n} of {len(keys)} train prompts with outputs ({tokens} output tokens) -> {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
