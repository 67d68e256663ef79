"""``sufdec compact``: fold the log into a fresh snapshot and give freed pages back to the disk.

LMDB never shrinks its data file: pages freed by evictions and old snapshots are reused,
not returned. Compaction copies the environment with ``compact=True`` (live pages only)
into a temporary directory inside the store and renames the copy over ``data.mdb``.

Nobody else may have the store open while the file is swapped (they would keep writing
to the old, unlinked file). Compaction first takes ``sufdec.lock`` exclusively (every
``Store.open`` holds it shared while open; opens that start meanwhile wait for it,
``StoreConfig.open_wait_s``), then asks LMDB's lock file and the kernel whether any
process has the environment open (``users``: that also sees processes that bypass
``sufdec.lock`` or whose copy of it was deleted), and refuses at once if so, before it
writes anything. It checks again after the checkpoint and after the copy, just before
the rename. A crash before the rename leaves the store as it was (the stale temporary
directory is removed next time); the rename itself is atomic, and the copy is synced
before it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import lmdb

from . import env as env_mod
from . import envfiles, failures, opening, users
from .config import StoreConfig
from .env import DATA_FILE, DB_NAMES, lock_use
from .errors import StoreError, StoreIOError, StoreLockedError, StoreNotFoundError
from .reads import disk_bytes
from .store import Store

TMP_PREFIX = ".compact-"


@dataclass(frozen=True)
class CompactSummary:
    path: str
    before_bytes: int  # data.mdb + lock.mdb before
    after_bytes: int
    snapshot_bytes: int
    sequences: int


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def compact_store(path: str | os.PathLike[str], config: StoreConfig | None = None) -> CompactSummary:
    """Checkpoint the store at ``path`` (``~`` expanded; pick it with ``resolve_store_path``),
    then rewrite its data file with live pages only.

    Raises ``StoreLockedError`` when the store is open in this or another process.
    """
    cfg = config or StoreConfig()
    if path is None or str(path) == "":
        raise ValueError("compact needs a store path (see sufdec.store.resolve_store_path)")
    where = Path(os.path.realpath(Path(path).expanduser()))
    envfiles.check_store_reachable(where)
    if not env_mod.store_exists(where):
        raise StoreNotFoundError(f"no store at {where}")
    if env_mod.is_open(where):
        raise StoreLockedError(f"the store at {where} is open in this process; close it before compacting")
    what = "compacting"
    # data.mdb may be a link to a file elsewhere (another disk): the compacted copy is made
    # beside the file and replaces it, so the link keeps pointing at the store's data
    data = Path(os.path.realpath(where / DATA_FILE))
    fd = lock_use(where, exclusive=True, wait_s=0.0)
    try:
        users.refuse_if_used(where, what, open_here=False)
        before = disk_bytes(where)
        for stale in data.parent.glob(TMP_PREFIX + "*"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp = _make_tmp(where, data.parent)  # before anything is written: an unwritable directory changes nothing
        try:
            senv, _ = opening.open_env(where, None, cfg, readonly=False, create=False, use_lock=False)
            with Store(senv, cfg, readonly=False) as store:
                store.checkpoint(force=True)
                stats = store.stats()
            users.refuse_if_used(where, what, open_here=False)
            _copy_and_swap(where, tmp, max(cfg.map.initial, data.stat().st_size), what, data)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    finally:
        if fd is not None:
            os.close(fd)
    return CompactSummary(str(where), before, disk_bytes(where), stats.snapshot_bytes, stats.sequences)


def _failed(where: Path, doing: str, exc: OSError, changed: str) -> StoreError:
    reason = "permission denied (a read-only directory?)" if isinstance(exc, PermissionError) else exc.strerror or exc
    kind = StoreLockedError if isinstance(exc, PermissionError) else StoreIOError
    return kind(f"cannot compact the store at {where}: {doing} failed: {reason}; {changed}")


def _make_tmp(where: Path, beside: Path) -> Path:
    """The directory the compacted copy is written to: in the store, or beside the data
    file a link points at (a rename must stay on one file system)."""
    try:
        return Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir=beside))
    except OSError as exc:
        raise _failed(where, "making its temporary copy beside data.mdb", exc, "the store is unchanged") from None


def _copy_and_swap(where: Path, tmp: Path, map_size: int, what: str, data: Path) -> None:
    try:
        env = lmdb.open(str(where), map_size=map_size, max_dbs=len(DB_NAMES) + 2, readonly=False, lock=True)
        try:
            env.copy(str(tmp), compact=True)
        finally:
            env.close()
    except lmdb.Error as exc:
        raise failures.translate(exc, where, writing=True) from None
    kept = "data.mdb is the one it had (checkpointed: same records, a fresh snapshot)"
    try:
        _fsync(tmp / DATA_FILE)
    except OSError as exc:
        raise _failed(where, "syncing the compacted copy", exc, kept) from None
    users.refuse_if_used(where, what, open_here=False)  # the last look, just before the rename
    try:
        os.replace(tmp / DATA_FILE, data)
    except OSError as exc:
        raise _failed(where, "renaming the compacted copy over data.mdb", exc, kept) from None
    try:
        _fsync(data.parent)
    except OSError as exc:
        raise _failed(
            where,
            "syncing the store directory after the rename",
            exc,
            "data.mdb is the compacted copy; it is durable once the file system syncs",
        ) from None


def remove_empty_store(path: str | os.PathLike[str], *, created: Path | None = None) -> bool:
    """Delete the store at ``path`` if nothing was ever added to it and no other process
    has it open (an ``index`` run that created it and found no usable record); also the
    directories from ``created`` (the first one that run made, if it made any) down to it.
    Returns whether it was removed. Never raises for a store that is in use or not empty."""
    where = Path(os.path.realpath(Path(path).expanduser()))
    if not env_mod.store_exists(where) or env_mod.is_open(where):
        return False
    try:
        fd = lock_use(where, exclusive=True, wait_s=0.0)
    except StoreLockedError:
        return False
    try:
        if users.others_using(where, open_here=False):
            return False
        senv, _ = opening.open_env(where, None, StoreConfig(), readonly=True, create=False, use_lock=False)
        with Store(senv, StoreConfig(), readonly=True) as store:
            if store.meta().next_log_pos:
                return False
        for name in env_mod.STORE_FILES:
            (where / name).unlink(missing_ok=True)
    finally:
        if fd is not None:
            os.close(fd)
    if created is not None:
        _remove_empty_dirs(where, Path(os.path.realpath(created)))
    return True


def _remove_empty_dirs(leaf: Path, top: Path) -> None:
    if top != leaf and top not in leaf.parents:
        top = leaf
    for d in [leaf, *leaf.parents]:
        try:
            d.rmdir()
        except OSError:
            return
        if d == top:
            return
