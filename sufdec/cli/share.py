"""``--share`` and ``sufdec share``: a store's outputs shared with other hosts through PostgreSQL.

A command that opens a store with sharing on (``--share URL`` or ``$SUFDEC_SHARE``) first
catches up with the shared table and sends what this host queued (``joined``), and sends
what it learned before it exits; ``generate`` keeps following while it runs. PostgreSQL
being unreachable is a warning, never an error: outputs stay queued in the store.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any, Iterator, Optional

import typer

from sufdec.cli import common

ENV = "SUFDEC_SHARE"

ShareOption = typer.Option(
    None,
    "--share",
    show_default=False,
    help=(
        "PostgreSQL URL of a corpus shared by many hosts (postgresql://user@host/db): catch up with what "
        "the others learned, publish what this host learns. Default: $SUFDEC_SHARE; unset: this host alone."
    ),
)

app = typer.Typer(help="Share the store with other hosts through PostgreSQL (see --share).", no_args_is_help=True)


def resolve(explicit: Optional[str]) -> Optional[str]:
    """--share, else $SUFDEC_SHARE (read here, once), else None."""
    url = explicit if explicit is not None else os.environ.get(ENV)
    if url is not None and not url.strip():
        return None
    if url is not None and not url.startswith(("postgresql://", "postgres://")):
        raise common.fail(f"--share takes a PostgreSQL URL (postgresql://...), not {url!r}", 2)
    return url


@contextlib.contextmanager
def joined(store: Any, url: Optional[str], *, follow: bool = False) -> Iterator[Any]:
    """The store joined to the shared table for the length of a command: one round first,
    one more at the end (``follow``: a background thread in between). Yields the Replica
    (None without ``url``, or where PostgreSQL cannot be reached at first)."""
    if url is None:
        yield None
        return
    from sufdec.share import Replica, ShareError

    replica = Replica(store, url)
    _round(replica, "caught up")
    if follow:
        replica.start()
    try:
        yield replica
    finally:
        if follow:
            replica.stop()
        else:
            with contextlib.suppress(ShareError):
                _round(replica, "published", quiet_if_idle=True)
        replica.close()


def _round(replica: Any, what: str, quiet_if_idle: bool = False) -> None:
    from sufdec.share import ShareError, shown_url

    try:
        with common.counting_progress() as progress:
            task = progress.add_task("catching up with the shared corpus", total=None)
            s = replica.sync(on_pull=lambda done, total: progress.update(task, completed=done, total=total))
    except ShareError as exc:
        common.say(f"sharing: {exc}; outputs stay queued in the store and go out on a later run")
        return
    if quiet_if_idle and not (s.pulled or s.pushed):
        return
    common.say(
        f"shared via {shown_url(replica.url)}: {what}, {s.pulled:,} outputs of other hosts added, "
        f"{s.pushed:,} of this host's published"
    )


def _open(store_dir: Optional[Path], model: Optional[str], tokenizer: Optional[str], trust: bool) -> Any:
    """The store, opened for writing; a new one takes the tokenizer of --tokenizer/--model
    (default: the default model's), so that a new host can start from the table."""
    from sufdec.store import Store

    path = common.resolve_store(store_dir)
    if (path / "data.mdb").exists() and tokenizer is None and model is None:
        return Store.open(path, create=False)
    return common.open_store_for(store_dir, model, tokenizer, trust_remote_code=trust)[1]


def _one_round(store: Any, url: str) -> None:
    """One round for the store, closed afterwards, for a command that reads or changes it next."""
    from sufdec.share import Replica

    try:
        replica = Replica(store, url)
        try:
            _round(replica, "caught up")
        finally:
            replica.close()
    finally:
        store.close()


def catch_up(store_dir: Optional[Path], url: str, model: Optional[str], tokenizer: Optional[str], trust: bool) -> None:
    """One round for a command that then reads the store (``stats --share``, ``train-exit --share``);
    a new host's store is made here."""
    with common.clean_errors():
        _one_round(_open(store_dir, model, tokenizer, trust), url)


def sync_existing(store_dir: Optional[Path], url: Optional[str]) -> None:
    """One round for the existing store at ``store_dir`` (``evict`` and ``compact``, before
    they change it: what this host queued goes out first, so eviction cannot drop it unsent)."""
    if url is None:
        return
    from sufdec.store import Store

    with common.clean_errors():
        _one_round(Store.open(common.resolve_store(store_dir), create=False), url)


def _required(share: Optional[str]) -> str:
    url = resolve(share)
    if url is None:
        raise common.fail(f"no shared database: give --share URL or set ${ENV}", 2)
    return url


@contextlib.contextmanager
def _replica_of(store_dir: Optional[Path], url: str) -> Iterator[Any]:
    """The existing store at --store, joined to the table (closed, both, afterwards)."""
    from sufdec.share import Replica
    from sufdec.store import Store

    st = Store.open(common.resolve_store(store_dir), create=False)
    try:
        replica = Replica(st, url)
        try:
            yield replica
        finally:
            replica.close()
    finally:
        st.close()


@app.command("status")
def status(
    share: Optional[str] = ShareOption,
    store: Optional[Path] = common.StoreOption,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Where this host stands in the shared corpus.

    Its cursor, how far behind the table it is (records and seconds), how many of its
    outputs wait to be published, and the hosts seen with what each published.
    """
    url = _required(share)
    from sufdec.share import SharedTable, shown_url

    with common.clean_errors(), _replica_of(store, url) as replica:
        pushed, pulled = replica.cursors()
        info: dict[str, Any] = {"database": shown_url(url), "host": replica.host, "queued": replica.queued()}
        info.update({"pushed_through_local_id": pushed, "cursor": pulled})
        table = SharedTable(url)
        try:
            summary = table.summary(replica.tokenizer)
            newest_applied = table.created_at(pulled) if pulled else None
            info["lag_records"] = table.rows_after(replica.tokenizer, pulled)
            keep = table.retention()
        finally:
            table.close()
    behind = summary.newest_time - newest_applied if summary.newest_time and newest_applied else None
    if info["lag_records"] and behind is None and summary.newest_time:
        behind = time.time() - summary.newest_time
    info.update({"lag_s": round(behind, 3) if behind is not None else 0.0, "table_rows": summary.rows})
    info["hosts"] = summary.hosts
    info["retention"] = {"keep_days": keep.keep_days, "keep_rows": keep.keep_rows}
    if as_json:
        print(json.dumps(info))
        return
    common.console.print(
        f"{info['database']}: host {info['host']}, cursor {pulled:,} of {summary.newest_id:,}, "
        f"{info['lag_records']:,} records ({info['lag_s']:.1f} s) behind, {info['queued']:,} of this host's "
        f"outputs queued; the table holds {summary.rows:,} outputs of this tokenizer and keeps {keep}",
        highlight=False,
    )
    for host, n in sorted(summary.hosts.items(), key=lambda kv: -kv[1]):
        mine = " (this host)" if host == replica.host else ""
        common.console.print(f"  {host}{mine}: {n:,} outputs", highlight=False)


@app.command("push")
def push(
    share: Optional[str] = ShareOption,
    store: Optional[Path] = common.StoreOption,
) -> None:
    """Publish the store's whole history to the shared corpus, once.

    Outputs learned before sharing was turned on are included; outputs the table has
    already are skipped.
    """
    url = _required(share)
    from sufdec.share import shown_url

    with common.clean_errors(), _replica_of(store, url) as replica:
        s = replica.push_history()
    common.console.print(f"published {s.pushed:,} outputs to {shown_url(url)} (the rest were there)", highlight=False)


@app.command("retention")
def retention(
    keep_days: Optional[float] = typer.Option(
        None, "--keep-days", help="Keep the outputs published in the last N days.", show_default=False
    ),
    keep_rows: Optional[int] = typer.Option(
        None, "--keep-rows", help="Keep the newest N outputs of each tokenizer.", show_default=False
    ),
    off: bool = typer.Option(False, "--off", help="Keep everything (remove the setting)."),
    share: Optional[str] = ShareOption,
) -> None:
    """Show or set what the shared table keeps (its own retention; each host's store keeps
    its own budget).

    The setting lives in the database: every host that shares applies it, about every
    10 minutes, so no host needs a job of its own. Setting it applies it at once. A host
    that joins later replays only what is kept. Without options: print the setting.
    """
    from sufdec.cli import checks

    if off and (keep_days is not None or keep_rows is not None):
        raise common.fail("--off keeps everything: give it alone, or --keep-days/--keep-rows", 2)
    if keep_days is not None:
        checks.in_range(keep_days, "--keep-days", low=0.0)
    if keep_rows is not None:
        checks.in_range(keep_rows, "--keep-rows", low=0)
    url = _required(share)
    from sufdec.share import Retention, SharedTable, shown_url

    with common.clean_errors():
        table = SharedTable(url)
        try:
            gone = None
            if off or keep_days is not None or keep_rows is not None:
                table.set_retention(Retention(keep_days, keep_rows))
                gone = table.apply_retention()
            keep = table.retention()
        finally:
            table.close()
    done = f"; deleted {gone:,} outputs it does not keep" if gone is not None else ""
    common.console.print(f"{shown_url(url)} keeps {keep}{done}", highlight=False)


@app.command("trim")
def trim(
    keep_days: float = typer.Option(..., "--keep-days", help="Keep the outputs published in the last N days."),
    share: Optional[str] = ShareOption,
) -> None:
    """Delete older outputs from the shared table, once (`share retention` sets what it
    keeps for good). A host that joins later replays only what is kept."""
    from sufdec.cli import checks

    checks.in_range(keep_days, "--keep-days", low=0.0)
    url = _required(share)
    from sufdec.share import Retention, SharedTable, shown_url

    with common.clean_errors():
        table = SharedTable(url)
        try:
            gone = table.trim(Retention(keep_days=keep_days))
        finally:
            table.close()
    common.console.print(
        f"deleted {gone:,} outputs older than {keep_days:g} days from {shown_url(url)}", highlight=False
    )
