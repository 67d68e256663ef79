"""Who else has the store open (issue 12, items 1, 4, 5 and 9).

`compact` and `verify --repair` need the store to themselves and must tell even when our
``sufdec.lock`` was deleted or the other process bypasses it (LMDB's lock file tells);
a refused `compact` writes nothing; deleting ``lock.mdb`` or replacing ``data.mdb`` under
an open store stops its process at the next transaction instead of letting two processes
write through different lock files; and `verify` notices records that were acknowledged
to a writer but are no longer in the data file.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sufdec.store import Store, StoreLockedError, compact_store
from sufdec.store.verify import repair_store, verify

from .helpers import TOK

REPO = Path(__file__).resolve().parents[2]

HOLD_STORE = (
    "import sys; from sufdec.store import Store\n"
    "s = Store.open(sys.argv[1]); s.tree; print('open', flush=True); sys.stdin.readline()\n"
)
HOLD_RAW_LMDB = (  # a process that opens the environment itself, never taking sufdec.lock
    "import sys, lmdb\n"
    "e = lmdb.open(sys.argv[1], max_dbs=8, readonly=True)\n"
    "with e.begin() as t: t.stat()\n"
    "print('open', flush=True); sys.stdin.readline()\n"
)


@contextlib.contextmanager
def held(store: Path, code: str = HOLD_STORE) -> Iterator[subprocess.Popen]:
    """Another process holding the store open until the block ends."""
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(store)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO
    )
    try:
        assert proc.stdout.readline().strip() == "open"
        yield proc
    finally:
        proc.communicate("\n", timeout=60)


def _digest(store: Path) -> str:
    return hashlib.sha256((store / "data.mdb").read_bytes()).hexdigest()


def _make(store: Path, n: int = 30) -> None:
    with Store.open(store, TOK) as st:
        for i in range(n):
            st.append([1 + i % 200, 2, 3, 4 + i])
        st.checkpoint()
        for i in range(n, n + 5):  # a few in the log, so a checkpoint would change the file
            st.append([1 + i % 200, 2, 3, 4 + i])


@pytest.mark.parametrize("code", [HOLD_STORE, HOLD_RAW_LMDB], ids=["sufdec.lock-deleted", "raw-lmdb-user"])
def test_compact_refused_whatever_happened_to_sufdec_lock(tmp_path: Path, code: str) -> None:
    """Item 1 (and 9): the other process is seen through LMDB's lock file, and the refused
    compaction changed nothing (no forced checkpoint first)."""
    _make(tmp_path)
    with held(tmp_path, code):
        (tmp_path / "sufdec.lock").unlink(missing_ok=True)
        before, inode = _digest(tmp_path), (tmp_path / "data.mdb").stat().st_ino
        with pytest.raises(StoreLockedError, match="open in another process"):
            compact_store(tmp_path)
        assert _digest(tmp_path) == before and (tmp_path / "data.mdb").stat().st_ino == inode
    assert compact_store(tmp_path).sequences == 35


def test_refused_compact_does_not_checkpoint_first(tmp_path: Path) -> None:
    """Item 9: with sufdec.lock intact, the refusal comes before any write."""
    _make(tmp_path)
    with held(tmp_path):
        before = _digest(tmp_path)
        for _ in range(3):
            with pytest.raises(StoreLockedError):
                compact_store(tmp_path)
        assert _digest(tmp_path) == before


def test_repair_refused_while_another_process_has_the_store_open(tmp_path: Path) -> None:
    """Item 4: repair needs the store to itself (it rewrites what other processes' trees hold)."""
    _make(tmp_path)
    with held(tmp_path):
        before = _digest(tmp_path)
        with Store.open(tmp_path, TOK) as st:
            with pytest.raises(StoreLockedError, match="open in another process"):
                repair_store(st)
        assert _digest(tmp_path) == before
    with Store.open(tmp_path, TOK) as st:  # alone now: repair runs
        repair_store(st)
        assert verify(st) == [] and len(st) == 35


def test_writer_stops_when_lock_mdb_is_deleted_under_it(tmp_path: Path) -> None:
    """Item 5: a process whose lock.mdb was deleted must not write again (a newcomer would
    use a fresh lock file and the two would write at once); reopening recovers."""
    with Store.open(tmp_path, TOK) as st:
        st.append([1, 2, 3])
        (tmp_path / "lock.mdb").unlink()
        with pytest.raises(StoreLockedError, match="lock.mdb"):
            st.append([4, 5, 6])
        with pytest.raises(StoreLockedError, match="lock.mdb"):
            len(st)
    with Store.open(tmp_path, TOK) as st:
        assert len(st) == 1 and st.append([4, 5, 6]) is not None and verify(st) == []


def test_open_refused_while_lock_mdb_is_missing_under_another_process(tmp_path: Path) -> None:
    """Item 5: a newcomer that finds lock.mdb gone while the store is open elsewhere says so."""
    _make(tmp_path, 3)
    with held(tmp_path):
        (tmp_path / "lock.mdb").unlink()
        with pytest.raises(StoreLockedError, match="lock.mdb"):
            Store.open(tmp_path, TOK, readonly=True, create=False)
    with Store.open(tmp_path, TOK) as st:  # the holder is gone: LMDB makes a new lock file
        assert len(st) == 8 and verify(st) == []


def test_writer_stops_when_data_mdb_is_replaced_under_it(tmp_path: Path) -> None:
    """Item 1: a data file swapped under a writer would swallow its later commits."""
    with Store.open(tmp_path, TOK) as st:
        st.append([1, 2, 3])
        shutil.copy(tmp_path / "data.mdb", tmp_path / "copy.mdb")
        os.replace(tmp_path / "copy.mdb", tmp_path / "data.mdb")
        with pytest.raises(StoreLockedError, match="data.mdb"):
            st.append([4, 5, 6])


def test_verify_notices_acknowledged_records_that_are_gone(tmp_path: Path) -> None:
    """Item 1: an older data file restored under the store is consistent inside; the mark of
    acknowledged ids kept beside it tells that records are missing. Repair accepts the loss."""
    with Store.open(tmp_path, TOK) as st:
        for i in range(5):
            st.append([1, 2, 3, i])
    shutil.copy(tmp_path / "data.mdb", tmp_path / "old.mdb")
    with Store.open(tmp_path, TOK) as st:
        for i in range(5, 9):
            st.append([1, 2, 3, i])
        assert verify(st) == []
    os.replace(tmp_path / "old.mdb", tmp_path / "data.mdb")
    with Store.open(tmp_path, TOK) as st:
        problems = verify(st)
        assert len(problems) == 1 and "acknowledged" in problems[0] and "ids 5..8" in problems[0], problems
        repair_store(st)
        assert verify(st) == [] and len(st) == 5
