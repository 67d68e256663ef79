"""The store's side of issue 12, item 10: paths it cannot use, budgets beyond 64 bits,
impossible meta values, and a compaction that cannot write or rename its copy. Each is a
typed StoreError (or ValueError for a config) with one sentence, and nothing changes."""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

import pytest

from sufdec.store import NotAStoreError, Store, StoreConfig, StoreCorruptError, StoreError
from sufdec.store import compact as compact_mod
from sufdec.store.errors import StoreIOError, StoreLockedError
from sufdec.store.evict import Budget

from .helpers import TOK


def _digest(path: Path) -> str:
    return hashlib.sha256((path / "data.mdb").read_bytes()).hexdigest()


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    path = tmp_path / "store"
    with Store.open(path, TOK) as st:
        for i in range(5):
            st.append([1, 2, 3 + i])
    return path


def test_compact_refuses_before_writing_when_it_cannot_make_its_copy(store_dir: Path, monkeypatch) -> None:
    def denied(*a, **k):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(compact_mod.tempfile, "mkdtemp", denied)
    before = _digest(store_dir)
    with pytest.raises(StoreLockedError, match="permission denied.*the store is unchanged"):
        compact_mod.compact_store(store_dir)
    assert _digest(store_dir) == before  # not even the checkpoint ran


@pytest.mark.parametrize(
    "exc, kind",
    [
        (PermissionError(errno.EACCES, "Permission denied"), StoreLockedError),
        (OSError(errno.EXDEV, "Invalid cross-device link"), StoreIOError),
    ],
)
def test_compact_whose_rename_fails_keeps_the_store(store_dir: Path, monkeypatch, exc, kind) -> None:
    def fails(*a, **k):
        raise exc

    monkeypatch.setattr(compact_mod.os, "replace", fails)
    with pytest.raises(kind, match="renaming the compacted copy"):
        compact_mod.compact_store(store_dir)
    monkeypatch.undo()
    assert not list(store_dir.glob(compact_mod.TMP_PREFIX + "*"))
    from sufdec.store.verify import verify

    with Store.open(store_dir, TOK) as st:
        assert len(st) == 5 and verify(st) == []


def test_store_paths_it_cannot_use(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(NotAStoreError, match="afile is a file, not a directory"):
        Store.open(afile / "x", TOK)
    where = tmp_path / "st\udcff"  # a name holding the byte 0xff: LMDB takes UTF-8 paths only
    with pytest.raises(StoreError, match=r"st\\xff is not UTF-8"):
        Store.open(where, TOK)
    assert not os.path.lexists(where)


def test_a_budget_beyond_64_bits_is_a_value_error(tmp_path: Path) -> None:
    """It was an OverflowError from msgpack while recording the budget."""
    with pytest.raises(ValueError, match="at most"):
        Budget(max_tokens=2**64)
    with pytest.raises(ValueError, match="at most"):
        Store.open(tmp_path / "s", TOK, config=StoreConfig(max_bytes=2**70))


@pytest.mark.parametrize(
    "key, value",
    [("eviction", "random"), ("max_tokens", -1), ("max_depth", 70000), ("next_seq_id", -5), ("format_version", 0)],
)
def test_impossible_meta_values_are_refused_at_open(store_dir: Path, key: str, value) -> None:
    import lmdb

    from sufdec.store import codec

    env = lmdb.open(str(store_dir), max_dbs=8)
    with env.begin(write=True) as txn:
        txn.put(key.encode(), codec.pack(value), db=env.open_db(b"meta", txn=txn))
    env.close()
    for readonly in (True, False):
        with pytest.raises(StoreCorruptError, match=f"metadata is damaged: its meta value '{key}'"):
            Store.open(store_dir, TOK, readonly=readonly)


def test_compact_keeps_a_linked_data_file_where_the_link_points(tmp_path: Path) -> None:
    """Issue 20 item 9: data.mdb a link to a file on another disk: compact used to put a
    regular file in its place on the store's disk and leave a stale full copy behind the
    link. The link stays; the file it points at is the one compacted."""
    from sufdec.store.evict import Budget as _Budget
    from sufdec.store.verify import verify

    store, elsewhere = tmp_path / "store", tmp_path / "big-disk"
    elsewhere.mkdir()
    with Store.open(store, TOK) as st:
        for i in range(300):
            st.append([1, 2, 3, i % 250, i // 250] + [7] * 200)
        st.checkpoint()
        st.evict(_Budget(max_tokens=5_000))
        kept = [s.tokens for s in st.iter_sequences()]
    os.replace(store / "data.mdb", elsewhere / "data.mdb")
    os.symlink(elsewhere / "data.mdb", store / "data.mdb")
    size = (elsewhere / "data.mdb").stat().st_size
    compact_mod.compact_store(store)
    assert (store / "data.mdb").is_symlink() and os.readlink(store / "data.mdb") == str(elsewhere / "data.mdb")
    assert (elsewhere / "data.mdb").stat().st_size < size
    assert sorted(p.name for p in elsewhere.iterdir()) == ["data.mdb"]  # no copy left behind
    with Store.open(store, TOK) as st:
        assert [s.tokens for s in st.iter_sequences()] == kept and verify(st) == []
