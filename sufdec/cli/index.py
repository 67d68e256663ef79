"""``sufdec index``: add past outputs from a JSONL file to the store."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Optional

import typer

from sufdec.cli import checks, common, maintenance
from sufdec.cli import share as share_cli


def _check_source(source: str) -> None:
    """A readable file, FIFO or pipe (``<(cmd)`` is /dev/fd/N), or - for standard input."""
    if source == "-":
        return
    name = checks.shown(source)  # a name with bytes that are not UTF-8 is shown as \xff, never a traceback
    st = checks.readable_stream(source, name, " (use - to read standard input)")
    if stat.S_ISREG(st.st_mode) and st.st_size == 0:
        raise common.fail(f"{name} is empty: nothing to index")


def _first_missing(path: Path) -> Optional[Path]:
    """The outermost directory of ``path`` that does not exist yet (None if it exists)."""
    path = Path(os.path.abspath(path))
    if path.exists():
        return None
    while not path.parent.exists():
        path = path.parent
    return path


def index(
    source: str = typer.Argument(..., help="JSONL file of past outputs, or - for standard input.", show_default=False),
    store: Optional[Path] = common.StoreOption,
    model: Optional[str] = common.ModelOption,
    tokenizer: Optional[str] = typer.Option(
        None,
        "--tokenizer",
        help="Tokenizer folder, tokenizer.json or hub id (default: the model's).",
        show_default=False,
    ),
    trust_remote_code: bool = common.TrustRemoteCodeOption,
    field: Optional[str] = typer.Option(
        None, "--field", help="Read the output from this key instead of the usual ones.", show_default=False
    ),
    strict: bool = typer.Option(False, "--strict", help="Abort at the first malformed line instead of skipping it."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as one JSON object."),
    max_tokens: Optional[int] = maintenance.MaxTokensOption,
    max_bytes: Optional[str] = maintenance.MaxBytesOption,
    eviction: Optional[str] = maintenance.EvictionOption,
    share: Optional[str] = share_cli.ShareOption,
    txn_records: Optional[int] = typer.Option(
        None, "--txn-records", min=1, hidden=True, help="Records per write transaction (default 4096)."
    ),
) -> None:
    """Add past outputs to the store (the suffix tree learns from them).

    Each JSONL line is one record: {"text"}, {"prompt","completion"}, {"prompt","response"|"output"},
    chat {"messages":[...]} (every assistant turn is an output) or pre-tokenized {"token_ids":[...]}.
    Only outputs go into the tree. Records are keyed by content hash, so re-running adds
    nothing and a killed run, re-run, completes the rest. Malformed lines are reported with
    their line numbers and skipped (or abort under --strict).
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from sufdec.store import ingest_jsonl

    _check_source(source)
    share_url = share_cli.resolve(share)
    config = maintenance.budget_config(max_tokens, max_bytes, eviction)
    if txn_records is not None:
        import dataclasses

        config = dataclasses.replace(config, txn_records=txn_records)
    with common.clean_errors():
        from sufdec.store import check_store_reachable

        check_store_reachable(common.resolve_store(store))
        made_dirs = _first_missing(common.resolve_store(store))
        new_store = not (common.resolve_store(store) / "data.mdb").exists()
        tok, st = common.open_store_for(store, model, tokenizer, config=config, trust_remote_code=trust_remote_code)
        try:
            with (
                share_cli.joined(st, share_url),
                Progress(
                    TextColumn("[bold]indexing[/]"),
                    BarColumn(),
                    TextColumn("{task.percentage:>3.0f}%"),
                    TextColumn("{task.fields[records]:,} records"),
                    TextColumn("{task.fields[rate]}"),
                    TimeElapsedColumn(),
                    console=common.err_console,
                    transient=True,
                    disable=not common.err_console.is_terminal,
                ) as progress,
            ):
                task = progress.add_task("index", total=None, records=0, rate="")

                def on_progress(records: int, tokens: int, done: int, total: Optional[int]) -> None:
                    elapsed = progress.tasks[0].elapsed or 1e-9
                    rate = f"{records / elapsed:,.0f} rec/s, {tokens / elapsed:,.0f} tok/s"
                    progress.update(task, completed=done, total=total, records=records, rate=rate)

                src = sys.stdin.buffer if source == "-" else source
                summary = ingest_jsonl(
                    st,
                    src,
                    encode=tok.encode_batch,
                    vocab_size=tok.vocab_size,
                    field=field,
                    strict=strict,
                    on_progress=on_progress,
                )
            stats = st.stats()
        finally:
            st.close()
    usable = summary.records_added + summary.duplicates
    if not usable and new_store:  # "unchanged" must be true: take the new, empty store away again
        from sufdec.store import remove_empty_store

        if remove_empty_store(stats.path, created=made_dirs):
            stats = None
    report = {
        "records_added": summary.records_added,
        "duplicates": summary.duplicates,
        "skipped": summary.skipped,
        "tokens_added": summary.tokens_added,
        "evicted": summary.evicted,
        "evicted_tokens": summary.evicted_tokens,
        "lines_read": summary.lines_read,
        "elapsed_s": round(summary.elapsed_s, 3),
        "store": stats.path if stats else None,
        "store_sequences": stats.sequences if stats else 0,
        "store_tokens": stats.tokens if stats else 0,
        "problems": [{"line": p.line, "reason": p.reason} for p in summary.problems],
    }
    _print_summary(summary, stats, report, as_json)
    if not usable and as_json:
        raise typer.Exit(1)
    if not usable:
        what = f"{summary.skipped:,} malformed lines" if summary.skipped else "only blank lines"
        where = "no store was created" if stats is None else "the store is unchanged"
        raise common.fail(f"no usable record in {checks.shown(source)} ({what}); {where}")


def _print_summary(summary, stats, report: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report))
        return
    for p in summary.problems:
        common.err_console.print(f"[yellow]line {p.line}:[/] {p.reason}", highlight=False, soft_wrap=True)
    if summary.skipped > len(summary.problems):
        common.err_console.print(f"[yellow]... and {summary.skipped - len(summary.problems)} more malformed lines[/]")
    evicted = (
        f", [yellow]evicted[/] {summary.evicted:,} stored records ({summary.evicted_tokens:,} tokens) to keep "
        "the store's budget"
        if summary.evicted
        else ""
    )
    where = f" Store {stats.path}: {stats.sequences:,} sequences, {stats.tokens:,} tokens." if stats is not None else ""
    common.console.print(
        f"[green]added[/] {summary.records_added:,} records ({summary.tokens_added:,} tokens), "
        f"{summary.duplicates:,} duplicates, {summary.skipped:,} skipped{evicted}, in "
        f"{summary.elapsed_s:.2f} s.{where}",
        highlight=False,
    )
