"""``sufdec compact``: fold the log into a fresh snapshot and give freed pages back to the disk.

LMDB never shrinks its data file: pages freed by evictions and old snapshots are reused,
not returned. Compaction copies the environment with ``compact=True`` (live pages only)
into a temporary directory inside the store and renames the copy over ``data.mdb``.

Other processes must not have the store open while the file is swapped (they would keep
writing to the old, unlinked file). Every ``Store.open`` holds a shared flock on the
store's ``sufdec.lock`` for as long as the store is open; compaction takes it exclusively
(failing at once with ``StoreLockedError`` if anyone has the store open), and opens that
start meanwhile wait for it (``StoreConfig.open_wait_s``). A process that opens the LMDB
files directly, bypassing sufdec, is not covered. A crash before the rename leaves the
store as it was (the stale temporary directory is removed next time); the rename itself
is atomic, and the copy is synced before it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import lmdb

from . import env as env_mod
from .config import StoreConfig
from .env import DATA_FILE, DB_NAMES, lock_use
from .errors import StoreLockedError, StoreNotFoundError
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


def compact(path: str | os.PathLike[str], config: StoreConfig | None = None) -> CompactSummary:
    """Checkpoint the store at ``path`` (``~`` expanded; pick it with ``resolve_store_path``),
    then rewrite its data file with live pages only.

    Raises ``StoreLockedError`` when the store is open in this or another process.
    """
    cfg = config or StoreConfig()
    if path is None or str(path) == "":
        raise ValueError("compact needs a store path (see sufdec.store.resolve_store_path)")
    where = Path(os.path.realpath(Path(path).expanduser()))
    if not env_mod.store_exists(where):
        raise StoreNotFoundError(f"no store at {where}")
    if env_mod.is_open(where):
        raise StoreLockedError(f"the store at {where} is open in this process; close it before compacting")
    before = disk_bytes(where)
    with Store.open(where, config=cfg, create=False) as store:
        store.checkpoint(force=True)
        stats = store.stats()
    for stale in where.glob(TMP_PREFIX + "*"):
        shutil.rmtree(stale, ignore_errors=True)
    fd = lock_use(where, exclusive=True, wait_s=0.0)
    try:
        _copy_and_swap(where, max(cfg.map.initial, (where / DATA_FILE).stat().st_size))
    finally:
        if fd is not None:
            os.close(fd)
    return CompactSummary(str(where), before, disk_bytes(where), stats.snapshot_bytes, stats.sequences)


def _copy_and_swap(where: Path, map_size: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir=where))
    try:
        env = lmdb.open(str(where), map_size=map_size, max_dbs=len(DB_NAMES) + 2, readonly=False, lock=True)
        try:
            env.copy(str(tmp), compact=True)
        finally:
            env.close()
        _fsync(tmp / DATA_FILE)
        os.replace(tmp / DATA_FILE, where / DATA_FILE)
        _fsync(where)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
