"""Figures of the vLLM benchmark: per cell, against plain vLLM, and the issue's targets.

A cell is one (workload, method, phase, concurrency) measurement written by ``child``.
Per cell: tokens/s; tokens per request-step, ``tokens / (tokens - accepted)`` (every
request-step yields one token plus those accepted; prefill steps included); vLLM's mean
acceptance length, ``1 + accepted / drafts`` over the request-steps that had a draft (its
own log's figure); the acceptance rate, accepted over verified draft tokens; the draft
tokens verified per request-step; the proposer's time per engine step (the whole batch);
and the outputs against plain vLLM's at the same concurrency (token ids, prompt by prompt).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Optional


def read_cells(path: Path) -> list[dict]:
    rows = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


def name_of(row: dict) -> str:
    phase = row["phase"]
    return row["label"] if phase in ("-", "") else f"{row['label']} ({phase})"


def first_difference(a: list[list[int]], b: list[list[int]]) -> tuple[int, Optional[list[int]]]:
    """(prompts whose outputs differ, [first such prompt, first differing position])."""
    bad, first = 0, None
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            bad += 1
            if first is None:
                pos = next((k for k, (s, t) in enumerate(zip(x, y)) if s != t), min(len(x), len(y)))
                first = [i, pos]
    return bad + abs(len(a) - len(b)), first


def summarize(rows: Iterable[dict]) -> list[dict]:
    """One summary per cell (the last measurement of each key wins), outputs left out."""
    cells: dict[tuple, dict] = {}
    for row in rows:
        cells[(row["workload"], name_of(row), row["concurrency"])] = row
    plain = {(w, c): r for (w, n, c), r in cells.items() if n == "plain"}
    out = []
    for (workload, name, c), row in cells.items():
        spec = row.get("spec") or {}
        tokens, acc = row["tokens"], spec.get("num_accepted_tokens", 0)
        drafts, drafted = spec.get("num_drafts", 0), spec.get("num_draft_tokens", 0)
        req_steps = max(tokens - acc, 1)
        s: dict[str, Any] = {
            "workload": workload,
            "method": name,
            "concurrency": c,
            "tokens": tokens,
            "wall_s": round(row["wall_s"], 2),
            "tokens_per_s": round(row["tokens_per_s"], 2),
            "tokens_per_step": round(tokens / req_steps, 3),
            "mean_acceptance_length": round(1 + acc / drafts, 3) if drafts else None,
            "acceptance_rate": round(acc / drafted, 3) if drafted else None,
            "draft_tokens_per_step": round(drafted / req_steps, 2),
            "engine_steps": row.get("engine_steps"),
            "propose_ms_per_step": (
                round(1000 * row["propose_s"] / row["propose_calls"], 3) if row.get("propose_calls") else None
            ),
            "propose_share": round(row.get("propose_s", 0.0) / row["wall_s"], 4) if row["wall_s"] else None,
            "spec": spec,
            "load_1m": row.get("load_1m"),
            "engine_start_s": round(row.get("engine_start_s", 0), 1),
            "reset": row.get("reset"),
        }
        if row.get("token_cost"):  # the step history stays in cells.jsonl
            s["token_cost"] = {k: v for k, v in row["token_cost"].items() if k != "history"}
        ref = plain.get((workload, c))
        if ref is not None:
            s["vs_plain"] = round(row["tokens_per_s"] / ref["tokens_per_s"], 3)
            s["mismatches"], s["first_mismatch"] = first_difference(row["outputs"], ref["outputs"])
        base = plain.get((workload, 1))
        if name == "plain" and base is not None:
            s["mismatches_vs_plain_c1"], _ = first_difference(row["outputs"], base["outputs"])
        out.append(s)
    order = {"plain": 0, "ngram": 1, "suffix (a)": 2, "suffix (b)": 3, "sufdec (ab)": 4}
    out.sort(key=lambda s: (s["workload"], s["concurrency"], order.get(s["method"], 9), s["method"]))
    return out


def _tps(summary: list[dict], workload: str, method: str, c: int) -> Optional[float]:
    return next(
        (
            s["tokens_per_s"]
            for s in summary
            if s["workload"] == workload and s["method"] == method and s["concurrency"] == c
        ),
        None,
    )


def targets(summary: list[dict]) -> list[dict]:
    """The issue's targets, per workload and concurrency, with the measured ratio (for
    sufdec and each of its variants: every method measured in phase ``ab``)."""
    res = []
    ours_names = sorted({s["method"] for s in summary if s["method"].endswith(" (ab)")})
    for workload, c in sorted({(s["workload"], s["concurrency"]) for s in summary}):
        suffix_a, suffix_b = _tps(summary, workload, "suffix (a)", c), _tps(summary, workload, "suffix (b)", c)
        ngram = _tps(summary, workload, "ngram", c)
        for name in ours_names:
            ours = _tps(summary, workload, name, c)
            if ours is None:
                continue
            who = {"method": name[:-5], "workload": workload, "concurrency": c}
            if suffix_a:
                res.append(
                    {
                        "target": "(a) one run: >= vLLM suffix",
                        **who,
                        "ratio": round(ours / suffix_a, 3),
                        "need": 1.0,
                        "met": ours >= suffix_a,
                    }
                )
            elif ngram:
                res.append(
                    {
                        "target": "(a) one run: >= 1.2x ngram (no suffix)",
                        **who,
                        "ratio": round(ours / ngram, 3),
                        "need": 1.2,
                        "met": ours >= 1.2 * ngram,
                    }
                )
            if suffix_b:
                res.append(
                    {
                        "target": "(b) after a restart: >= 1.5x vLLM suffix (cold)",
                        **who,
                        "ratio": round(ours / suffix_b, 3),
                        "need": 1.5,
                        "met": ours >= 1.5 * suffix_b,
                        "issue_target": workload == "spider",
                    }
                )
    return res


def _fmt(v: Any, spec: str = "") -> str:
    return "" if v is None else format(v, spec)


def table(summary: list[dict]) -> str:
    """A markdown table, one row per cell."""
    lines = [
        "| workload | conc. | method | tokens/s | x plain | tokens/step | accept. length | accepted "
        "| draft tokens/step | proposer ms/step | mismatches |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summary:
        mism = s.get("mismatches")
        mism_text = "" if mism is None else (str(mism) if not mism else f"{mism} (first {s['first_mismatch']})")
        lines.append(
            f"| {s['workload']} | {s['concurrency']} | {s['method']} | {s['tokens_per_s']:.1f} "
            f"| {_fmt(s.get('vs_plain'), '.2f')} | {s['tokens_per_step']:.2f} "
            f"| {_fmt(s['mean_acceptance_length'], '.2f')} "
            f"| {_fmt(s['acceptance_rate'], '.0%')} | {s['draft_tokens_per_step']:.1f} "
            f"| {_fmt(s['propose_ms_per_step'], '.2f')} | {mism_text} |"
        )
    return "\n".join(lines)


def target_lines(res: list[dict]) -> str:
    return "\n".join(
        f"- {r['method']} {r['target']}, {r['workload']} c={r['concurrency']}: {r['ratio']:.2f}x "
        f"(need {r['need']}x): {'met' if r['met'] else 'MISSED'}"
        for r in res
    )
