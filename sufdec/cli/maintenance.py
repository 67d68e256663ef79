"""``sufdec verify``, ``sufdec evict`` and ``sufdec compact``: keep a store sound and bounded."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Optional

import typer

from sufdec.cli import common
from sufdec.cli import share as share_cli

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: Optional[str]) -> Optional[int]:
    """Bytes from ``123``, ``64K``, ``1.5M``, ``2G`` (binary units; ``KiB``/``MB`` spellings too).

    The result must be a whole number of bytes: ``0.1`` used to round to 0, which means
    unlimited, the opposite of what was asked."""
    if text is None:
        return None
    from sufdec.store import MAX_BUDGET

    m = re.fullmatch(r"\s*(\d+)(?:\.(\d+))?\s*([kmgt]?)(?:i?b)?\s*", text.lower())
    if not m:
        raise common.fail(f"--max-bytes: {text!r} is not a size (e.g. 500M, 2G, 0 for unlimited)", 2)
    whole, frac, unit = m.group(1).lstrip("0") or "0", (m.group(2) or "").rstrip("0"), m.group(3)
    if len(whole) > 40:  # far beyond any budget (and Python's int() stops at 4,300 digits)
        raise common.fail(f"--max-bytes: {text[:60]!r}... is more than the largest budget, {MAX_BUDGET:,} bytes", 2)
    if len(frac) > 40:
        raise common.fail(f"--max-bytes: {text[:60]!r}... is not a whole number of bytes (0 means unlimited)", 2)
    scaled = int(whole + frac) * _UNITS[unit]  # exact: no float rounding
    size, rest = divmod(scaled, 10 ** len(frac))
    if rest:
        raise common.fail(f"--max-bytes: {text!r} is not a whole number of bytes (0 means unlimited)", 2)
    if size > MAX_BUDGET:
        raise common.fail(
            f"--max-bytes: {text!r} is more than the largest budget, {MAX_BUDGET:,} bytes (0 means unlimited)", 2
        )
    return size


def check_max_tokens(max_tokens: Optional[int]) -> None:
    from sufdec.cli.checks import in_range
    from sufdec.store import MAX_BUDGET

    in_range(max_tokens, "--max-tokens", low=0, high=MAX_BUDGET, note=" (0 means unlimited)")


MaxTokensOption = typer.Option(
    None,
    "--max-tokens",
    show_default=False,
    help="Token budget, 0 to 2**63-1: evict the oldest outputs beyond it (recorded in the store; 0 = unlimited).",
)
MaxBytesOption = typer.Option(
    None,
    "--max-bytes",
    show_default=False,
    help="Byte budget for the stored records, e.g. 500M (recorded in the store; 0 = unlimited).",
)
EvictionOption = typer.Option(
    None,
    "--eviction",
    show_default=False,
    help="Eviction order: fifo (oldest first) or lru (re-appending an output makes it recent).",
)


def budget_config(max_tokens: Optional[int], max_bytes: Optional[str], eviction: Optional[str]):
    """A StoreConfig that records the budget the flags name (None: keep the store's)."""
    from sufdec.store import EVICTION_POLICIES, StoreConfig

    if eviction is not None and eviction not in EVICTION_POLICIES:
        raise common.fail(f"--eviction must be one of {', '.join(EVICTION_POLICIES)}", 2)
    check_max_tokens(max_tokens)
    return StoreConfig(max_tokens=max_tokens, max_bytes=parse_size(max_bytes), eviction=eviction)


def _human(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:,} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def verify(
    store: Optional[Path] = common.StoreOption,
    repair: bool = typer.Option(
        False,
        "--repair",
        help="Rebuild the hash index, counters, tree and snapshot from the sequences, dropping "
        "records that fail their checks (needs the store to itself).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Check every record against its content hash, and the tree against a rebuild.

    Also checks the hash index, the counters, the log and the snapshot digest; the
    snapshot + log tree is compared with a tree rebuilt from the stored sequences.

    Exits 0 only when everything matches (after --repair: when the repaired store does).
    """
    from sufdec.store import Store, repair_store, verify_report

    summary = None
    with common.clean_errors():
        st = Store.open(common.resolve_store(store), readonly=not repair, create=False)
        try:
            with common.counting_progress() as progress:
                tasks: dict[str, int] = {}

                def tick(phase: str, done: int, total: int) -> None:
                    if phase not in tasks:
                        label = "checking records" if phase == "records" else "rebuilding the tree"
                        tasks[phase] = progress.add_task(label, total=total)
                    progress.update(tasks[phase], completed=done, total=total)

                report = verify_report(st, on_progress=tick)
                found = list(report.problems)
                if repair and found:
                    summary = repair_store(st)
                    tasks.clear()
                    report = verify_report(st, on_progress=tick)
        finally:
            st.close()
    dropped = [{"seq_id": i, "reason": why} for i, why in (summary.dropped if summary else [])]
    out = {
        "ok": report.ok,
        "problems": found,
        "repaired": summary is not None,
        "remaining": report.problems,
        "sequences": report.sequences,
        "tokens": report.tokens,
        "tree_nodes": report.tree_nodes,
        "rebuilt_nodes": report.rebuilt_nodes,
        "dropped": dropped,
        "accepted_loss": summary.accepted_loss if summary else None,
    }
    if as_json:
        print(json.dumps(out))
    else:
        for p in found:
            common.err_console.print(f"[yellow]problem:[/] {p}", highlight=False)
        for d in dropped:
            what = f"sequence {d['seq_id']}" if d["seq_id"] is not None else "a record"
            common.err_console.print(f"[yellow]dropped:[/] {what}: {d['reason']}", highlight=False)
        if out["accepted_loss"]:
            common.err_console.print(f"[yellow]accepted:[/] {out['accepted_loss']}", highlight=False)
        if report.ok:
            what = "repaired; " if out["repaired"] else ""
            common.console.print(
                f"[green]ok:[/] {what}{report.sequences:,} sequences, {report.tokens:,} tokens; the tree "
                f"({report.tree_nodes:,} nodes) matches a rebuild from the sequences.",
                highlight=False,
            )
        else:
            hint = "" if repair else " Run `sufdec verify --repair`."
            common.err_console.print(f"[bold red]error:[/] {len(report.problems)} problem(s) found.{hint}")
    if not report.ok:
        raise typer.Exit(1)


def evict(
    store: Optional[Path] = common.StoreOption,
    max_tokens: Optional[int] = MaxTokensOption,
    max_bytes: Optional[str] = MaxBytesOption,
    record: bool = typer.Option(False, "--record", help="Also record these limits as the store's budget."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    share: Optional[str] = share_cli.ShareOption,
) -> None:
    """Evict the oldest outputs until the store fits a budget.

    The budget is the given limits, else the one the store records. Eviction is one
    transaction: the tree and the store shrink together. With sharing on, the store first
    syncs with the shared table (what this host queued is published before anything is
    evicted); the table keeps its own retention (`sufdec share retention`).
    """
    from sufdec.store import Budget, Store

    limit = parse_size(max_bytes)
    check_max_tokens(max_tokens)
    share_cli.sync_existing(store, share_cli.resolve(share))
    with common.clean_errors():
        st = Store.open(common.resolve_store(store), create=False)
        try:
            recorded = st.budget
            try:
                budget = Budget(
                    recorded.max_tokens if max_tokens is None else max_tokens,
                    recorded.max_bytes if limit is None else limit,
                    recorded.eviction,
                )
            except ValueError as exc:
                raise common.fail(str(exc), 2) from None
            if budget.unlimited:
                raise common.fail("no budget: give --max-tokens or --max-bytes (the store records none)", 2)
            before = st.stats()
            summary = st.evict(budget)
            if record:
                st.set_budget(budget)
            after = st.stats()
        finally:
            st.close()
    out = {
        "evicted_sequences": summary.sequences,
        "evicted_tokens": summary.tokens,
        "sequences": after.sequences,
        "tokens": after.tokens,
        "max_tokens": budget.max_tokens,
        "max_bytes": budget.max_bytes,
        "recorded": record,
        "sequences_before": before.sequences,
    }
    if as_json:
        print(json.dumps(out))
        return
    common.console.print(
        f"[green]evicted[/] {summary.sequences:,} sequences ({summary.tokens:,} tokens); the store holds "
        f"{after.sequences:,} sequences, {after.tokens:,} tokens. Run `sufdec compact` to give the space back.",
        highlight=False,
    )


def compact(
    store: Optional[Path] = common.StoreOption,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    share: Optional[str] = share_cli.ShareOption,
) -> None:
    """Rewrite the snapshot and give freed space back to the disk.

    Copies the store with live pages only, then renames the copy over the data file.
    The store must not be open in any other process (refused at once if it is; opens that
    start meanwhile wait). The swap is an atomic rename: a crash keeps the old or the new file.
    With sharing on, the store syncs with the shared table first, then closes and is compacted.
    """
    from sufdec.store import compact_store

    share_cli.sync_existing(store, share_cli.resolve(share))
    with common.clean_errors():
        with common.counting_progress() as progress:
            progress.add_task("compacting", total=None)
            summary = compact_store(common.resolve_store(store))
    if as_json:
        print(json.dumps(summary.__dict__))
        return
    common.console.print(
        f"[green]compacted[/] {summary.path}: {_human(summary.before_bytes)} -> {_human(summary.after_bytes)} "
        f"({summary.sequences:,} sequences, snapshot {_human(summary.snapshot_bytes)}).",
        highlight=False,
    )
