"""PNG plots of generation benchmark results (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _label(result: dict) -> str:
    return f"{result.get('workload', '?')} ({result.get('dtype', '?')})"


def speedup_by_method(results: Sequence[dict], path: Path) -> Path:
    """Grouped bars: median per-prompt speedup over vanilla, one group per workload run."""
    plt = _plt()
    methods = [m for m in dict.fromkeys(m for r in results for m in r["methods"]) if m != "vanilla"]
    fig, ax = plt.subplots(figsize=(max(5, 1.6 * len(results) * max(len(methods), 1) / 2), 3.6))
    width = 0.8 / max(len(methods), 1)
    for j, m in enumerate(methods):
        xs, ys = [], []
        for i, r in enumerate(results):
            v = r["methods"].get(m, {}).get("speedup_median")
            if v is not None:
                xs.append(i + (j - (len(methods) - 1) / 2) * width)
                ys.append(v)
        bars = ax.bar(xs, ys, width, label=m)
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_xticks(range(len(results)), [_label(r) for r in results])
    ax.set_ylabel("speedup over plain generate() (median)")
    if methods:
        ax.legend(fontsize=8, ncol=2)
    ax.set_title("generation speedup by method and workload")
    return _save(plt, fig, path)


def acceptance_by_match_len(result: dict, path: Path) -> Path:
    """Mean accepted tokens per step against the draft's match length, per suffix method."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for m, s in result["methods"].items():
        rows = s.get("accepted_by_match_len") or {}
        if not rows:
            continue
        ks = sorted(int(k) for k in rows)
        ax.plot(ks, [rows[str(k)]["mean_accepted"] for k in ks], marker="o", ms=3, label=m)
    ax.set_xlabel("match length of the draft (tokens)")
    ax.set_ylabel("accepted draft tokens per step")
    ax.set_title(f"acceptance by match length: {_label(result)}")
    ax.legend(fontsize=8)
    return _save(plt, fig, path)


def tau_vs_corpus(result: dict, path: Path) -> Path:
    """Scaling study: tau and speedup against the number of train outputs in the tree."""
    plt = _plt()
    rows = result["scaling"]
    xs = [r["corpus"] for r in rows]
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ax.plot(xs, [r["tau"] for r in rows], marker="o", label="tau (tokens per step)")
    ax.plot(xs, [r["speedup_median"] for r in rows], marker="s", label="speedup over plain (median)")
    ax.set_xscale("symlog", linthresh=16)
    ax.set_xlabel("train outputs in the tree")
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax2 = ax.twinx()
    ax2.plot(xs, [r["draft_ms_per_step"] for r in rows], color="grey", ls=":", marker="^", label="drafting ms/step")
    ax2.set_ylabel("drafting ms per step")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=8, loc="upper left")
    ax.set_title(f"suffix-tree vs corpus size: {_label(result)}")
    return _save(plt, fig, path)


def plots_for(result: dict, out: Path) -> list[str]:
    """Every plot that fits one results dict; returns the file names written."""
    names = []
    if "scaling" in result:
        names.append(tau_vs_corpus(result, out / "tau_vs_corpus.png").name)
    else:
        names.append(speedup_by_method([result], out / "speedup.png").name)
    if any(s.get("accepted_by_match_len") for s in result["methods"].values()):
        names.append(acceptance_by_match_len(result, out / "acceptance_by_match_len.png").name)
    return names
