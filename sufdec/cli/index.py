"""``sufdec index``: add past outputs from a JSONL file to the store."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from sufdec.cli import common, maintenance


def open_store_for(store_dir: Optional[Path], model: Optional[str], tokenizer: Optional[str], *, say=common.say,
                   config=None):
    """Load the tokenizer named by --model/--tokenizer and open the store with it."""
    from sufdec.store import Store, TokenizerInfo

    tok = common.load_text_tokenizer(tokenizer or model)
    path = common.resolve_store(store_dir)
    store = Store.open(path, TokenizerInfo(tok.name, tok.fingerprint), config=config)
    return tok, store


def index(
    source: str = typer.Argument(..., help="JSONL file of past outputs, or - for standard input.", show_default=False),
    store: Optional[Path] = common.StoreOption,
    model: Optional[str] = common.ModelOption,
    tokenizer: Optional[str] = typer.Option(
        None, "--tokenizer", help="Tokenizer folder, tokenizer.json or hub id (default: the model's).",
        show_default=False),
    field: Optional[str] = typer.Option(
        None, "--field", help="Read the output from this key instead of the usual ones.", show_default=False),
    strict: bool = typer.Option(False, "--strict", help="Abort at the first malformed line instead of skipping it."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as one JSON object."),
    max_tokens: Optional[int] = maintenance.MaxTokensOption,
    max_bytes: Optional[str] = maintenance.MaxBytesOption,
    eviction: Optional[str] = maintenance.EvictionOption,
    txn_records: Optional[int] = typer.Option(
        None, "--txn-records", min=1, hidden=True, help="Records per write transaction (default 4096)."),
) -> None:
    """Add past outputs to the store (the suffix tree learns from them).

    Each JSONL line is one record: {"text"}, {"prompt","completion"}, {"prompt","response"|"output"},
    chat {"messages":[...]} (every assistant turn is an output) or pre-tokenized {"token_ids":[...]}.
    Only outputs go into the tree. Records are keyed by content hash, so re-running adds
    nothing and a killed run, re-run, completes the rest. Malformed lines are reported with
    their line numbers and skipped (or abort under --strict).
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from sufdec.store.ingest import ingest_jsonl

    if source != "-" and not Path(source).is_file():
        raise common.fail(f"{source}: no such file (use - to read standard input)", 2)
    if source != "-" and Path(source).stat().st_size == 0:
        raise common.fail(f"{source} is empty: nothing to index")
    config = maintenance.budget_config(max_tokens, max_bytes, eviction)
    if txn_records is not None:
        import dataclasses

        config = dataclasses.replace(config, txn_records=txn_records)
    with common.clean_errors():
        tok, st = open_store_for(store, model, tokenizer, config=config)
        try:
            with Progress(
                TextColumn("[bold]indexing[/]"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                TextColumn("{task.fields[records]:,} records"), TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(), console=common.err_console, transient=True,
                disable=not common.err_console.is_terminal,
            ) as progress:
                task = progress.add_task("index", total=None, records=0, rate="")

                def on_progress(records: int, tokens: int, done: int, total: Optional[int]) -> None:
                    elapsed = progress.tasks[0].elapsed or 1e-9
                    rate = f"{records / elapsed:,.0f} rec/s, {tokens / elapsed:,.0f} tok/s"
                    progress.update(task, completed=done, total=total, records=records, rate=rate)

                src = sys.stdin.buffer if source == "-" else source
                summary = ingest_jsonl(
                    st, src, encode=tok.encode_batch, vocab_size=tok.vocab_size, field=field,
                    strict=strict, on_progress=on_progress,
                )
            stats = st.stats()
        finally:
            st.close()
    report = {
        "records_added": summary.records_added,
        "duplicates": summary.duplicates,
        "skipped": summary.skipped,
        "tokens_added": summary.tokens_added,
        "lines_read": summary.lines_read,
        "elapsed_s": round(summary.elapsed_s, 3),
        "store": stats.path,
        "store_sequences": stats.sequences,
        "store_tokens": stats.tokens,
        "problems": [{"line": p.line, "reason": p.reason} for p in summary.problems],
    }
    usable = summary.records_added + summary.duplicates
    if as_json:
        print(json.dumps(report))
        if not usable:
            raise typer.Exit(1)
        return
    for p in summary.problems:
        common.err_console.print(f"[yellow]line {p.line}:[/] {p.reason}", highlight=False, soft_wrap=True)
    if summary.skipped > len(summary.problems):
        common.err_console.print(f"[yellow]... and {summary.skipped - len(summary.problems)} more malformed lines[/]")
    common.console.print(
        f"[green]added[/] {summary.records_added:,} records ({summary.tokens_added:,} tokens), "
        f"{summary.duplicates:,} duplicates, {summary.skipped:,} skipped, in {summary.elapsed_s:.2f} s. "
        f"Store {stats.path}: {stats.sequences:,} sequences, {stats.tokens:,} tokens.",
        highlight=False,
    )
    if not usable:
        what = f"{summary.skipped:,} malformed lines" if summary.skipped else "only blank lines"
        raise common.fail(f"no usable record in {source} ({what}); the store is unchanged")
