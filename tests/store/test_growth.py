"""The memory map starts small and grows on MapFullError; when it cannot, StoreFullError
leaves the store exactly as it was."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import lmdb
import pytest

from sufdec.store import MapLimits, SequenceRecord, Store, StoreConfig, StoreFullError
from sufdec.store import env as env_mod
from sufdec.store.verify import verify

from .helpers import TOK

SMALL = MapLimits(initial=256 << 10, maximum=1 << 30)


def big_records(n: int, length: int, salt: int = 0) -> list[SequenceRecord]:
    return [SequenceRecord([(i * 31 + j + salt) % 50_000 for j in range(length)], {}) for i in range(n)]


def test_map_grows_on_demand(tmp_path: Path) -> None:
    cfg = StoreConfig(map=SMALL, txn_records=64)
    with Store.open(tmp_path, TOK, config=cfg) as store:  # the tree is not loaded: LMDB only
        summary = store.add_many(big_records(300, 2_000))  # ~2.4 MB of tokens, ~10x the initial map
        assert summary.added == 300
        for i in range(20):
            store.append([i + 1] * 5_000)  # single appends grow it too
        stats = store.stats()
        assert stats.map_size > SMALL.initial and stats.used_bytes <= stats.map_size
        assert stats.sequences == 320 and verify(store, check_tree=False) == []
    with Store.open(tmp_path, TOK, config=cfg) as store:  # reopening with a small map is fine
        assert len(store) == 320
        store.append([7] * 10)


def _intact(store: Store, expected: int, tree_bytes: bytes) -> None:
    assert len(store) == expected and verify(store) == []
    assert store.tree.serialize() == tree_bytes


def test_full_at_maximum_leaves_store_intact(tmp_path: Path) -> None:
    cfg = StoreConfig(map=MapLimits(initial=256 << 10, maximum=512 << 10))
    with Store.open(tmp_path, TOK, config=cfg) as store:
        store.add_many(big_records(10, 100))
        tree_bytes = store.tree.serialize()
        with pytest.raises(StoreFullError, match="maximum map size"):
            store.add_many(big_records(50, 10_000, salt=1))  # ~2 MB in one transaction
        _intact(store, 10, tree_bytes)
        assert store.append([1, 2, 3]) == 10  # still writable
    with Store.open(tmp_path, TOK, config=cfg) as store:
        assert len(store) == 11 and verify(store) == []


def test_cannot_grow_raises_store_full(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = StoreConfig(map=SMALL)
    with Store.open(tmp_path, TOK, config=cfg) as store:
        store.add_many(big_records(10, 100))
        tree_bytes = store.tree.serialize()
        real = env_mod._set_map_size

        def refuse(env: lmdb.Environment, size: int) -> None:
            if size:
                raise lmdb.Error("mdb_env_set_mapsize: Cannot allocate memory")
            real(env, size)

        monkeypatch.setattr(env_mod, "_set_map_size", refuse)
        with pytest.raises(StoreFullError, match="could not grow"):
            store.append(list(range(200_000)))
        _intact(store, 10, tree_bytes)
        monkeypatch.setattr(env_mod, "_set_map_size", real)
        assert store.append(list(range(200_000))) == 10


def test_growth_by_another_process(tmp_path: Path) -> None:
    """A process whose map is smaller than what another process grew the file to keeps working."""
    cfg = StoreConfig(map=SMALL)
    with Store.open(tmp_path, TOK, config=cfg) as store:
        store.tree
        store.append([1, 2, 3])
        script = (
            "import sys; sys.path.insert(0, sys.argv[2]);"
            "from tests.store.helpers import TOK, use_fake_tree_if_needed; use_fake_tree_if_needed();"
            "from sufdec.store import Store, StoreConfig, MapLimits;"
            "s = Store.open(sys.argv[1], TOK, config=StoreConfig(map=MapLimits(initial=256 << 10)));"
            "[s.append([(i * 7919 + j * 31) % 50_000 for j in range(25_000)]) for i in range(10)]; s.close()"
        )
        root = str(Path(__file__).resolve().parents[2])
        subprocess.run([sys.executable, "-c", script, str(tmp_path), root], check=True, timeout=60)
        assert store.refresh() == 10 and len(store.tree) == 11
        assert store.append([4, 5, 6]) == 11
        assert store.stats().map_size > SMALL.initial and verify(store) == []


def test_threads_share_a_growing_store(tmp_path: Path) -> None:
    """Writers and readers on several threads while the map grows under them."""
    import random
    import threading

    cfg = StoreConfig(map=SMALL)
    errors: list[BaseException] = []
    with Store.open(tmp_path, TOK, config=cfg) as store:
        store.tree
        stop = threading.Event()

        def writer(k: int) -> None:
            rng = random.Random(k)
            try:
                for _ in range(25):
                    store.append([rng.randrange(50_000) for _ in range(3_000)])
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        def reader() -> None:
            try:
                while not stop.is_set():
                    store.get(0)
                    store.stats()
            except BaseException as exc:  # pragma: no cover
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(k,)) for k in range(3)]
        readers = [threading.Thread(target=reader) for _ in range(2)]
        for t in threads + readers:
            t.start()
        for t in threads:
            t.join()
        stop.set()
        for t in readers:
            t.join()
        assert errors == []
        assert len(store) == 75 and len(store.tree) == 75 and verify(store) == []
        assert store.stats().map_size > SMALL.initial


def test_lock_errors_are_typed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sufdec.store import StoreLockedError

    def locked(*args: object, **kwargs: object) -> None:
        raise lmdb.LockError("mdb_env_open: Resource temporarily unavailable")

    monkeypatch.setattr(env_mod.lmdb, "open", locked)
    with pytest.raises(StoreLockedError, match="is locked"):
        Store.open(tmp_path, TOK)
    assert env_mod.open_count() == 0
