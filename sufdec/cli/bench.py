"""``sufdec bench``: measure the core, the store and drafting quality."""

from __future__ import annotations

import json
from typing import Optional

import typer
from rich.table import Table

from sufdec.cli import common

app = typer.Typer(help="Benchmarks: core and store speed (tree), model-free drafting quality (replay).",
                  no_args_is_help=True)


def _tokenized_replies(limit_tokens: int, say=common.say) -> list[list[int]]:
    """ShareGPT replies tokenized with the default tokenizer, about ``limit_tokens`` in all."""
    from sufdec.bench import datasets
    from sufdec.tokenization import load_tokenizer

    tok = load_tokenizer(None)
    say("tokenizing ShareGPT replies with the default tokenizer ...")
    out, total = [], 0
    pairs = datasets.load_sharegpt_replies(limit=40000)
    for start in range(0, len(pairs), 1000):
        for ids in tok.encode_batch([r for _, r in pairs[start:start + 1000]]):
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


@app.command("tree")
def tree(
    corpus: str = typer.Option("both", "--corpus", help="synthetic, sharegpt or both."),
    tokens: int = typer.Option(1_000_000, "--tokens", help="Corpus size in tokens.", min=1000),
    max_depth: int = typer.Option(64, "--max-depth", min=1),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Speed and size of the suffix tree and the store on a synthetic and a real corpus.

    Reports update_us_per_token (tree), insert_us_per_token (tree + LMDB writes),
    speculate_us_per_call (mean, p99), speculate_us_per_token, memory_bytes_per_token,
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


@app.command("replay")
def replay(
    corpus: str = typer.Option("spider", "--corpus", help="spider, humaneval or sharegpt (reference outputs)."),
    budgets: str = typer.Option("32,128", "--budgets", help="Comma-separated draft budgets (nodes)."),
    trees: str = typer.Option("both", "--trees", help="global, request, both, or a comma list."),
    path_too: bool = typer.Option(False, "--path/--no-path", help="Also replay path (chain) drafts."),
    modes: str = typer.Option("paper,merged", "--modes", help="Drafting modes: paper (published algorithm), merged (sufdec's default), or both."),
    factor: Optional[float] = typer.Option(None, "--spec-factor", help="Budget factor alpha (budget <= alpha * match length). Default: 4 for paper, 1000 for merged.", show_default=False),
    min_token_prob: Optional[float] = typer.Option(None, "--min-token-prob", help="Default: 0.1 for paper, 0 for merged.", show_default=False),
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
    from sufdec.bench.replay import ReplayConfig, replay as run_replay
    from sufdec.tokenization import load_tokenizer

    with common.clean_errors():
        tok = load_tokenizer(None)
        pairs = datasets.replay_pairs(corpus)[:limit]
        prompts = tok.encode_batch([p for p, _ in pairs])
        outputs = tok.encode_batch([o for _, o in pairs])
    n = int(len(pairs) * 0.8)
    train, held = outputs[:n], list(zip(prompts[n:], outputs[n:]))
    defaults = {"paper": (4.0, 0.1), "merged": (1000.0, 0.0)}
    if any(m not in defaults for m in modes.split(",")):
        raise common.fail("--modes takes paper, merged or both", 2)
    configs = [
        ReplayConfig(trees=t, use_tree=use_tree, max_spec_tokens=int(b), mode=m,
                     max_spec_factor=factor if factor is not None else defaults[m][0],
                     min_token_prob=min_token_prob if min_token_prob is not None else defaults[m][1],
                     online=online)
        for m in modes.split(",") for b in budgets.split(",") for t in trees.split(",")
        for use_tree in ((True, False) if path_too and m == "paper" else (True,)) for online in (False, True)
    ]
    rows = []
    with Progress(console=common.err_console, transient=True, disable=not common.err_console.is_terminal) as progress:
        for cfg in configs:
            task = progress.add_task(cfg.label, total=len(held))
            res = run_replay(train, held, cfg, on_record=lambda k, task=task: progress.advance(task, k))
            rows.append({"label": cfg.label, **res.to_dict()})
    if as_json:
        print(json.dumps({"corpus": corpus, "train": len(train), "held_out": len(held), "results": rows}))
        return
    table = Table("mode/trees/draft/budget/protocol", "tau", "acceptance", "µs/step",
                  title=f"replay {corpus}: {len(train)} train, {len(held)} held out")
    for r in rows:
        table.add_row(r["label"], f"{r['tau']:.3f}", f"{r['acceptance_rate']:.3f}", f"{r['speculate_us_per_step']:.1f}")
    common.console.print(table)
