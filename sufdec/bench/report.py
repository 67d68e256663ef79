"""What a benchmark run reports: per-method summaries, the machine, and results.json.

``summarize`` turns one method's ``Run``s (and ``vanilla``'s on the same prompts) into the
figures of results.json: throughput, tokens per step (tau), acceptance, time per step by
stage, speedups (median of per-prompt ratios, total-time ratio, decode-only ratio) and
every prompt whose output differs from plain ``generate()``'s (a lossless method has none).
``machine_info`` and ``git_commit`` say where and on what code the figures were taken.
The keys are documented in docs/BENCHMARKS.md.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
from pathlib import Path
from typing import Optional, Sequence

from sufdec.bench.runners import Run
from sufdec.bench.settings import HF_METHODS

RESULT_VERSION = 1


def first_difference(a: Sequence[int], b: Sequence[int]) -> Optional[int]:
    """The first position where two token lists differ (None when equal)."""
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def _r(x: Optional[float], nd: int = 4) -> Optional[float]:
    return None if x is None else round(float(x), nd)


def _by_match_len(runs: Sequence[Run]) -> dict:
    by_len: dict[int, list[int]] = {}
    for r in runs:
        for k, (acc, n) in r.by_match_len.items():
            slot = by_len.setdefault(k, [0, 0])
            slot[0] += acc
            slot[1] += n
    return {str(k): {"mean_accepted": round(a / n, 3), "steps": n} for k, (a, n) in sorted(by_len.items())}


def _mismatches(runs: Sequence[Run], vanilla: Sequence[Run]) -> dict:
    mism = [(i, first_difference(r.tokens, v.tokens)) for i, (r, v) in enumerate(zip(runs, vanilla))]
    mism = [(i, pos) for i, pos in mism if pos is not None]
    return {
        "mismatches": len(mism),
        "first_mismatch": {"prompt": mism[0][0], "position": mism[0][1]} if mism else None,
        "mismatch_prompts": [{"prompt": i, "position": p} for i, p in mism],
    }


def summarize(name: str, runs: Sequence[Run], vanilla: Sequence[Run]) -> dict:
    """The per-method figures of results.json (drafting figures are None for transformers' methods)."""
    tokens = sum(len(r.tokens) for r in runs)
    time_s = sum(r.elapsed_s for r in runs)
    steps = sum(r.steps for r in runs)
    ours = name not in HF_METHODS
    ratios = [v.elapsed_s / r.elapsed_s for r, v in zip(runs, vanilla) if r.elapsed_s > 0]
    vt = sum(v.elapsed_s for v in vanilla)
    decode_s = time_s - sum(r.prefill_s for r in runs)
    v_decode_s = vt - sum(v.prefill_s for v in vanilla)

    def per_step(x: float, nd: int = 4, always: bool = False) -> Optional[float]:
        return _r(x / steps, nd) if steps and (ours or always) else None

    verified = sum(r.verified for r in runs)
    return {
        "prompts": len(runs),
        "tokens": tokens,
        "time_s": _r(time_s),
        "tokens_per_s": _r(tokens / time_s if time_s else 0.0, 3),
        "ms_per_token": _r(1000.0 * time_s / tokens if tokens else None, 3),
        "steps": steps,
        "tau": _r(tokens / steps if steps else None),
        "acceptance_rate": _r(sum(r.accepted_nodes for r in runs) / verified if verified else None) if ours else None,
        "drafted_per_step": per_step(sum(r.drafted for r in runs), 3),
        "verified_per_step": per_step(verified, 3),
        "draft_ms_per_step": per_step(1000.0 * sum(r.draft_s for r in runs)),
        "bookkeeping_ms_per_step": per_step(1000.0 * sum(r.bookkeeping_s for r in runs)),
        "forward_ms_per_step": per_step(1000.0 * sum(r.forward_s for r in runs), always=True),
        "observe_ms_per_step": per_step(1000.0 * sum(r.observe_s for r in runs)),
        "speedup_median": _r(statistics.median(ratios) if ratios else None),
        "speedup_total": _r(vt / time_s if time_s else None),
        "prefill_share": _r(sum(r.prefill_s for r in runs) / time_s if time_s else None),
        "speedup_decode": _r(v_decode_s / decode_s if decode_s > 0 else None),
        **_mismatches(runs, vanilla),
        "accepted_by_match_len": _by_match_len(runs),
        **({"hybrid_choices": _choices(runs)} if any(r.choices for r in runs) else {}),
    }


def _choices(runs: Sequence[Run]) -> dict:
    """Steps the hybrid drafted from each source, summed over the prompts."""
    out: dict = {}
    for r in runs:
        for k, n in r.choices.items():
            out[k] = out.get(k, 0) + n
    return out


def machine_info() -> dict:
    """CPU and GPU names, core count, torch threads and library versions."""
    import torch
    import transformers

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "cpu": cpu,
        "gpu": gpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def git_commit() -> Optional[str]:
    """The short commit of the code that ran (``-dirty`` with uncommitted changes), if a git checkout."""
    try:
        here = Path(__file__).resolve().parent
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return (out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")) or None
    except (OSError, subprocess.SubprocessError):
        return None


def plots_available() -> bool:
    """Whether matplotlib (the ``bench`` extra) is installed, for the PNG plots."""
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None


def write_results(result: dict, out: Path, *, plots: bool = True) -> None:
    """results.json under ``out`` first, then the PNG plots that fit it (named in
    ``result["plots"]``, and results.json rewritten with their names). A failing plot
    never costs the measurements: it is noted in ``result["plot_error"]`` instead."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.json"
    path.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    if not plots:
        return
    if not plots_available():
        result["plot_error"] = 'matplotlib is not installed: pip install "sufdec[bench]", then `sufdec bench plot`'
    else:
        try:
            from sufdec.bench import plots as plot_mod

            result["plots"] = plot_mod.plots_for(result, out)
        except Exception as exc:  # a plot is a convenience: the figures above are kept
            result["plot_error"] = f"{type(exc).__name__}: {exc}"
    path.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
