"""``sufdec bench tree`` and ``sufdec bench replay``: the model-free benchmarks (the suffix-tree
core's speed, and drafting quality on reference outputs), registered on ``sufdec bench``."""

from __future__ import annotations

import json
from typing import Optional

import typer
from rich.table import Table

from sufdec.cli import common
from sufdec.drafters.settings import DraftSettings
from sufdec.suffix.settings import preset_default


def _tokenized_replies(limit_tokens: int, say=common.say) -> list[list[int]]:
    """ShareGPT replies tokenized with the default tokenizer, about ``limit_tokens`` in all."""
    from sufdec.bench import datasets

    tok = common.load_text_tokenizer(None)
    say("tokenizing ShareGPT replies with the default tokenizer ...")
    out, total = [], 0
    pairs = datasets.load_sharegpt_replies(datasets.fetch("sharegpt", common.cache_root()), limit=40000)
    for start in range(0, len(pairs), 1000):
        for ids in tok.encode_batch([r for _, r in pairs[start : start + 1000]]):
            if ids:
                out.append(ids)
                total += len(ids)
        if total >= limit_tokens:
            break
    return out


def _print_table(title: str, rows: dict) -> None:
    table = Table("metric", "value", title=title)
    for k, v in rows.items():
        table.add_row(k, f"{v:,.3f}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int) else str(v))
    common.console.print(table)


def tree(
    corpus: str = typer.Option("both", "--corpus", help="synthetic, sharegpt or both."),
    tokens: int = typer.Option(1_000_000, "--tokens", help="Corpus size in tokens.", min=1000),
    max_depth: int = typer.Option(64, "--max-depth", min=1),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Speed and size of the suffix tree and the store on a synthetic and a real corpus.

    Reports update_us_per_token (tree), insert_us_per_token (tree + LMDB writes),
    speculate_us_per_call (incremental matcher, one token per step: mean, p99),
    scratch_us_per_call (the same contexts drafted from scratch, as without a matcher),
    speculate_us_per_token, memory_bytes_per_token (the tree's own count),
    rss_growth_bytes_per_token (what the inserts added to the process's RSS),
    disk_bytes_per_token and open_s. Wall times on a busy machine include time given to
    other processes: the *_cpu_* figures are this process's CPU time.
    """
    from sufdec.bench.store_bench import run_store_bench
    from sufdec.bench.tree import run_tree_bench, synthetic_corpus

    if corpus not in ("synthetic", "sharegpt", "both"):
        raise common.fail("--corpus must be synthetic, sharegpt or both", 2)
    results = {}
    with common.clean_errors():
        corpora = {}
        if corpus in ("synthetic", "both"):
            corpora["synthetic"] = synthetic_corpus(tokens)
        if corpus in ("sharegpt", "both"):
            corpora["sharegpt"] = _tokenized_replies(tokens)
        for name, seqs in corpora.items():
            common.say(f"{name}: {len(seqs):,} sequences, {sum(map(len, seqs)):,} tokens")
            res = run_tree_bench(seqs, max_depth=max_depth)
            res.update(run_store_bench(seqs, max_depth=max_depth))
            results[name] = res
    if as_json:
        print(json.dumps(results))
        return
    for name, res in results.items():
        _print_table(f"bench tree: {name}", res)


def _replay_configs(
    modes: str, budgets: str, trees: str, chain_too: bool, factor: Optional[float], min_token_prob: Optional[float]
) -> list:
    """Every combination of the replay options, each a ReplayConfig over a preset (exit 2 on bad values)."""
    from sufdec.bench.replay import TREES, ReplayConfig
    from sufdec.suffix import PRESETS

    mode_list = [m.strip() for m in modes.split(",") if m.strip()]
    tree_list = [t.strip() for t in trees.split(",") if t.strip()]
    if not mode_list or any(m not in PRESETS for m in mode_list):
        raise common.fail(f"--modes takes {', '.join(PRESETS)} or a comma list of them", 2)
    if not tree_list or any(t not in TREES for t in tree_list):
        raise common.fail(f"--trees takes {', '.join(TREES)} or a comma list of them", 2)
    try:
        budget_list = [int(b) for b in budgets.split(",") if b.strip()]
        return [
            ReplayConfig(
                DraftSettings.preset(
                    m, spec=spec, max_spec_tokens=b, max_spec_factor=factor, min_token_prob=min_token_prob
                ),
                trees=t,
                online=online,
            )
            for m in mode_list
            for b in budget_list
            for t in tree_list
            for spec in (("tree", "chain") if chain_too else ("tree",))
            for online in (False, True)
        ]
    except ValueError as exc:
        raise common.fail(f"bad replay options: {exc}", 2) from None


def replay(
    corpus: str = typer.Option("spider", "--corpus", help="spider, humaneval or sharegpt (reference outputs)."),
    budgets: str = typer.Option("32,128", "--budgets", help="Comma-separated draft budgets (nodes)."),
    trees: str = typer.Option("both", "--trees", help="global, request, both, or a comma list."),
    chain_too: bool = typer.Option(
        False, "--chain/--no-chain", help="Also replay chain drafts (each draft's most probable path)."
    ),
    modes: str = typer.Option(
        "paper,merged",
        "--modes",
        help="Drafting presets: paper (published algorithm), merged (sufdec's default), or both as a comma list.",
    ),
    factor: Optional[float] = common.setting(
        DraftSettings, "max_spec_factor", "--spec-factor", default=None, shown=preset_default("max_spec_factor")
    ),
    min_token_prob: Optional[float] = common.setting(
        DraftSettings, "min_token_prob", "--min-token-prob", default=None, shown=preset_default("min_token_prob")
    ),
    limit: Optional[int] = typer.Option(None, "--limit", help="Use only the first N records."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Model-free drafting quality: tau (tokens per step) on held-out reference outputs.

    Split by record index 80/20; the global tree holds the train outputs; each held-out
    output is walked token by token, drafting at each position and advancing by the
    accepted tokens + 1. Both protocols: frozen (held-out outputs never added) and online
    (each added once walked).
    """
    from rich.progress import Progress

    from sufdec.bench import datasets
    from sufdec.bench.replay import replay as run_replay

    if corpus not in datasets.PACKAGES:
        raise common.fail(f"--corpus takes {', '.join(datasets.PACKAGES)}", 2)
    configs = _replay_configs(modes, budgets, trees, chain_too, factor, min_token_prob)
    with common.clean_errors():
        tok = common.load_text_tokenizer(None)
        pairs = datasets.replay_pairs(corpus, common.cache_root())[:limit]
        prompts = tok.encode_batch([p for p, _ in pairs])
        outputs = tok.encode_batch([o for _, o in pairs])
    n = int(len(pairs) * 0.8)
    train, held = outputs[:n], list(zip(prompts[n:], outputs[n:]))
    rows = []
    with Progress(console=common.err_console, transient=True, disable=not common.err_console.is_terminal) as progress:
        for cfg in configs:
            task = progress.add_task(cfg.label, total=len(held))
            res = run_replay(train, held, cfg, on_record=lambda k, task=task: progress.advance(task, k))
            rows.append({"label": cfg.label, **res.to_dict()})
    if as_json:
        print(json.dumps({"corpus": corpus, "train": len(train), "held_out": len(held), "results": rows}))
        return
    table = Table(
        "mode/trees/spec/budget/protocol",
        "tau",
        "acceptance",
        "µs/step",
        title=f"replay {corpus}: {len(train)} train, {len(held)} held out",
    )
    for r in rows:
        table.add_row(r["label"], f"{r['tau']:.3f}", f"{r['acceptance_rate']:.3f}", f"{r['speculate_us_per_step']:.1f}")
    common.console.print(table)


# ---------------------------------------------------------------- generation benchmark
