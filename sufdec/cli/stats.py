"""``sufdec stats``: what the store and its suffix tree hold."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table
from rich.tree import Tree

from sufdec.cli import checks, common
from sufdec.cli import share as share_cli


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return str(n)


def collect(store_dir: Optional[Path]) -> tuple[dict, object]:
    """Everything ``stats --json`` prints, plus the open tree for prefix queries."""
    from sufdec.store import Store

    path = common.resolve_store(store_dir)
    st = Store.open(path, readonly=True, create=False)
    try:
        t0 = time.perf_counter()
        tree = st.tree
        open_s = time.perf_counter() - t0
        s = st.stats()
        ts = tree.stats()
    except BaseException:  # a damaged snapshot: the one-line error, and the store closed behind it
        st.close()
        raise
    info = {
        "path": s.path,
        "sequences": s.sequences,
        "tokens": s.tokens,
        "nodes": ts["nodes"],
        "max_depth": s.max_depth,
        "memory_bytes": ts["memory_bytes"],
        "disk_bytes": s.disk_bytes,
        "map_size": s.map_size,
        "map_used_bytes": s.used_bytes,
        "tokenizer": s.tokenizer_name,
        "tokenizer_fingerprint": s.tokenizer_fingerprint,
        "format_version": s.format_version,
        "created": s.created,
        "log_records": s.log_length,
        "snapshot_bytes": s.snapshot_bytes,
        "tree_load_s": round(open_s, 4),
        "depth_histogram": list(ts["depth_histogram"]),
        "budget": {"max_tokens": s.max_tokens, "max_bytes": s.max_bytes, "eviction": s.eviction},
    }
    return info, (st, tree)


def _render_summary(info: dict) -> None:
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    created = time.strftime("%Y-%m-%d %H:%M", time.localtime(info["created"])) if info["created"] else "?"
    rows = [
        ("store", info["path"]),
        ("sequences", f"{info['sequences']:,}"),
        ("tokens", f"{info['tokens']:,}"),
        ("nodes", f"{info['nodes']:,}"),
        ("max depth", str(info["max_depth"])),
        (
            "tree memory",
            f"{_human(info['memory_bytes'])} ({info['memory_bytes'] / max(info['tokens'], 1):.0f} B/token)",
        ),
        ("disk", _human(info["disk_bytes"])),
        ("map", f"{_human(info['map_used_bytes'])} used of {_human(info['map_size'])}"),
        ("tokenizer", f"{info['tokenizer']} ({info['tokenizer_fingerprint']})"),
        ("format", f"v{info['format_version']}, created {created}"),
        ("log", f"{info['log_records']:,} records after the snapshot ({_human(info['snapshot_bytes'])})"),
        ("budget", _budget_text(info["budget"], info["tokens"])),
        ("tree loaded in", f"{info['tree_load_s'] * 1000:.0f} ms"),
    ]
    for k, v in rows:
        table.add_row(k, v)
    common.console.print(table)
    hist = info["depth_histogram"]
    if any(hist):
        rows = _depth_buckets(hist)
        peak = max(n for _, n in rows)
        common.console.print("\n[bold]nodes by depth[/]")
        for label, n in rows:
            bar = "#" * max(1 if n else 0, round(40 * n / peak))
            common.console.print(f"{label:>7} {n:>11,} {bar}", highlight=False)


def _budget_text(budget: dict, tokens: int) -> str:
    limits = []
    if budget["max_tokens"]:
        limits.append(f"{budget['max_tokens']:,} tokens ({100 * tokens / budget['max_tokens']:.0f}% used)")
    if budget["max_bytes"]:
        limits.append(f"{_human(budget['max_bytes'])} of records")
    if not limits:
        return "none (grows without limit; see sufdec evict)"
    return " and ".join(limits) + f", {budget['eviction']} eviction"


def _depth_buckets(hist: list[int]) -> list[tuple[str, int]]:
    """Depths 0-3 one by one, then powers of two (4-7, 8-15, ...), the last depth alone."""
    last = len(hist) - 1
    rows, lo = [], 0
    while lo <= last:
        hi = lo if lo < 4 else min(2 * lo - 1, last - 1) if lo < last else last
        rows.append((str(lo) if hi == lo else f"{lo}-{hi}", sum(hist[lo : hi + 1])))
        lo = hi + 1
    return rows


def _render_prefix(tree, tok, prefix_ids: list[int], prefix_text: str, depth: int, width: int) -> None:
    core = tree.tree
    total = core.count(prefix_ids)
    at_limit = " (at the tree's depth limit: nothing is stored below it)" if len(prefix_ids) >= tree.max_depth else ""
    root = Tree(f"[bold]{prefix_text!r}[/] occurs {total:,} times{at_limit}")
    if total == 0:
        common.console.print(root)
        return
    entries = core.continuations(prefix_ids, depth, width)
    nodes: list[Tree] = []
    counts: list[int] = []
    for parent, token, count in entries:
        parent_count = total if parent < 0 else counts[parent]
        label = f"{tok.token_text(token)!r} [dim]x{count:,}  p={count / parent_count:.2f}[/]"
        nodes.append((root if parent < 0 else nodes[parent]).add(label, highlight=False))
        counts.append(count)
    common.console.print(root)


def stats(
    store: Optional[Path] = common.StoreOption,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    prefix: Optional[str] = typer.Option(
        None, "--prefix", help="Draw the continuation tree under this text.", show_default=False
    ),
    top: int = typer.Option(0, "--top", help="List the N >= 0 most frequent continuations (of --prefix if given)."),
    depth: int = typer.Option(4, "--depth", help="Levels drawn under --prefix, >= 1."),
    width: int = typer.Option(3, "--width", help="Children drawn per node under --prefix, >= 1."),
    model: Optional[str] = common.ModelOption,
    tokenizer: Optional[str] = typer.Option(
        None, "--tokenizer", help="Tokenizer for --prefix/--top (default: the model's).", show_default=False
    ),
    trust_remote_code: bool = common.TrustRemoteCodeOption,
    sources: bool = typer.Option(
        False,
        "--sources",
        help="Records and tokens by writer (index, generate, vllm, ...) and, for outputs other hosts shared, "
        "by host; reads every record.",
    ),
    share: Optional[str] = share_cli.ShareOption,
) -> None:
    """Show what the store holds: sequences, tokens, nodes, depth histogram, memory, disk, tokenizer."""
    checks.text(prefix, "--prefix")
    checks.in_range(top, "--top", low=0, high=checks.INT32_MAX)
    checks.in_range(depth, "--depth", low=1, high=checks.INT32_MAX)
    checks.in_range(width, "--width", low=1, high=checks.INT32_MAX)
    share_url = share_cli.resolve(share)
    if share_url is not None:  # what other hosts learned first (a new host's store starts here)
        share_cli.catch_up(store, share_url, model, tokenizer, trust_remote_code)
    with common.clean_errors():
        info, (st, tree) = collect(store)
        try:
            tok = None
            prefix_ids: list[int] = []
            if prefix is not None or top:
                tok = common.load_text_tokenizer(tokenizer or model, trust_remote_code)
                if info["tokenizer_fingerprint"] and tok.fingerprint != info["tokenizer_fingerprint"]:
                    raise common.fail(
                        f"the store was built with tokenizer {info['tokenizer']}, not {tok.name}; "
                        "pass the same --model or --tokenizer"
                    )
                prefix_ids = tok.encode(prefix) if prefix else []
                if len(prefix_ids) > info["max_depth"]:
                    raise common.fail(
                        f"--prefix is {len(prefix_ids)} tokens, longer than the tree's depth limit of "
                        f"{info['max_depth']}: the tree only holds contexts of up to {info['max_depth']} tokens, "
                        "so it cannot count this one; use the prefix's last tokens",
                        2,
                    )
            if sources:
                from sufdec.store import count_sources

                info["sources"] = count_sources(st.iter_sequences())
            if top:
                conts = tree.tree.top_continuations(prefix_ids, top)
                info["top"] = [{"token": t, "text": tok.token_text(t), "count": c} for t, c in conts]
            if as_json:
                print(json.dumps(info))
                return
            _render_summary(info)
            if sources:
                table = Table("written by", "sequences", "tokens", title="sources")
                for name, c in info["sources"].items():
                    table.add_row(name, f"{c['sequences']:,}", f"{c['tokens']:,}")
                common.console.print(table)
            if prefix is not None:
                common.console.print()
                _render_prefix(tree, tok, prefix_ids, prefix, depth, width)
            if top:
                table = Table(
                    "count", "next token", title=f"most frequent continuations{' of ' + repr(prefix) if prefix else ''}"
                )
                for row in info["top"]:
                    table.add_row(f"{row['count']:,}", repr(row["text"]))
                common.console.print(table)
        finally:
            st.close()
