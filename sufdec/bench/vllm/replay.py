"""Model-free replay of vLLM's chain verification at concurrency 1, from a benchmark's output:

    python -m sufdec.bench.vllm.replay OUT WORKLOAD

Each eval request is replayed in order over plain vLLM's greedy outputs (OUT/cells.jsonl,
concurrency 1): at every step the proposer drafts a chain for the context so far, the
chain is accepted up to its first wrong token, and the step yields those tokens plus one
(vLLM's bonus token). Finished outputs are learned before the next request, as in a cell.
Proposers: vLLM's ``suffix`` driven as vLLM drives it (``SuffixDecodingCache``: prompt
tree + global tree, depth 24, spec factor 1.0, min probability 0.1), warm (the corpus) and
cold; sufdec's vLLM adapter (``LiveRequests`` over a drafting service) on a tree of the
corpus, with its cost sizing at several fixed token costs. Prints tokens per request-step, accepted and drafted
tokens: what the drafts are worth, without the time a verification costs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Callable, Optional

from sufdec.drafters.service import DraftService
from sufdec.integrations.vllm.config import default_draft
from sufdec.integrations.vllm.drafting import LiveRequests
from sufdec.suffix import SuffixIndex

EOS = 2  # the default model's <|im_end|>


def _replay(
    prompts: list[list[int]],
    outs: list[list[int]],
    propose: Callable[[int, list[int], int], list[int]],
    finish: Callable[[int, list[int]], None],
) -> dict:
    steps = accepted = drafted = 0
    for i, (prompt, out) in enumerate(zip(prompts, outs)):
        pos, steps = 1, steps + 1  # the prefill yields the first token
        while pos < len(out):
            draft = propose(i, prompt + out[:pos], pos)
            a = 0
            while a < len(draft) and pos + a < len(out) and draft[a] == out[pos + a]:
                a += 1
            n = min(a + 1, len(out) - pos)
            pos, steps, accepted, drafted = pos + n, steps + 1, accepted + min(a, n), drafted + len(draft)
        finish(i, out)
    tokens = sum(map(len, outs))
    return {"steps": steps, "tokens_per_step": round(tokens / steps, 3), "accepted": accepted, "drafted": drafted}


def arctic(prompts: list[list[int]], outs: list[list[int]], corpus: Optional[list]) -> dict:
    import numpy as np
    from arctic_inference.suffix_decoding import SuffixDecodingCache

    cache = SuffixDecodingCache(max_tree_depth=24, max_cached_requests=10000)
    for n, (p, o) in enumerate(corpus or ()):
        cache.start_request(f"t{n}", np.asarray(p, dtype=np.int32))
        cache.add_active_response(f"t{n}", o)
        cache.stop_request(f"t{n}")
    seen: dict[int, int] = {}

    def propose(i: int, context: list[int], pos: int) -> list[int]:
        rid = f"e{i}"
        if rid not in cache.active_requests:
            cache.start_request(rid, np.asarray(prompts[i], dtype=np.int32))
            seen[i] = len(prompts[i])
        cache.add_active_response(rid, context[seen[i] :])
        seen[i] = len(context)
        ctx = np.asarray(context[-24:], dtype=np.int32)
        return cache.speculate(rid, ctx, max_spec_tokens=24, max_spec_factor=1.0, min_token_prob=0.1).token_ids

    def finish(i: int, out: list[int]) -> None:
        rid = f"e{i}"
        if rid in cache.active_requests:
            cache.add_active_response(rid, out[seen[i] - len(prompts[i]) :])
            cache.stop_request(rid)

    return _replay(prompts, outs, propose, finish)


def sufdec(
    prompts: list[list[int]],
    outs: list[list[int]],
    corpus: Optional[list],
    token_cost: float,
    k: int = 16,
    max_tokens: int = 128,
) -> dict:
    index = SuffixIndex(max_depth=64)
    known: dict[tuple, int] = {}
    for n, (_, o) in enumerate(corpus or ()):
        known.setdefault(tuple(o), n)
    index.add_many((n, list(t)) for t, n in sorted(known.items(), key=lambda kv: kv[1]))
    live = LiveRequests(DraftService(default_draft(), tree=lambda: index, price=token_cost))

    def propose(i: int, context: list[int], pos: int) -> list[int]:
        return live.draft(f"e{i}", context, min(k, max_tokens - pos - 1), {EOS})

    def finish(i: int, out: list[int]) -> None:
        live.finish(f"e{i}", None)  # learned below, as the store learns it
        if tuple(out) not in known:  # learned, as the store learns it (once)
            known[tuple(out)] = 10**6 + i
            index.add(10**6 + i, out)

    return _replay(prompts, outs, propose, finish)


def main(out_dir: str, workload: str) -> None:
    out = Path(out_dir)
    job = json.loads((out / workload / "suffix.job.json").read_text())
    cells = [json.loads(line) for line in (out / "cells.jsonl").read_text().splitlines() if line.strip()]
    plain = next(r for r in cells if r["workload"] == workload and r["method"] == "plain" and r["concurrency"] == 1)
    prompts, outs, corpus = job["eval_prompts"], plain["outputs"], job["corpus"]
    rows = [
        ("vLLM suffix, warm (a)", arctic(prompts, outs, corpus)),
        ("vLLM suffix, cold (b)", arctic(prompts, outs, None)),
    ]
    for cost in (0.35, 0.1, 0.0):
        rows.append((f"sufdec, token_cost {cost}", sufdec(prompts, outs, corpus, cost)))
    rows.append(("sufdec, empty store, token_cost 0.35", sufdec(prompts, outs, None, 0.35)))
    for name, r in rows:
        print(
            f"{workload} | {name} | {r['tokens_per_step']:.2f} | {r['accepted']} | {r['drafted']} "
            f"| {r['accepted'] / max(r['drafted'], 1):.0%} |",
            flush=True,
        )


if __name__ == "__main__":
    main(*sys.argv[1:3])
