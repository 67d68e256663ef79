from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import lmdb
import pytest

from sufdec.store import (
    AddSummary,
    EmptyStorePathError,
    FormatTooNewError,
    MigrationRequiredError,
    NotAStoreError,
    NotEmptyDirectoryError,
    SequenceRecord,
    Store,
    StoreConfig,
    StoreCorruptError,
    StoreError,
    StoreNotFoundError,
    StoreReadOnlyError,
    TokenizerInfo,
    TokenizerMismatchError,
    _tree,
    codec,
    default_store_path,
    migrations,
    resolve_store_path,
)
from sufdec.store import env as env_mod
from sufdec.store import meta as meta_mod
from sufdec.store.verify import repair_store, verify

from .helpers import TOK


def seqs(n: int, start: int = 0, length: int = 12) -> list[list[int]]:
    return [[(i * 7 + j) % 251 for j in range(length)] + [i % 256, i // 256] for i in range(start, start + n)]


def records(token_lists: list[list[int]]) -> list[SequenceRecord]:
    return [SequenceRecord(t, {"i": i}) for i, t in enumerate(token_lists)]


def rebuilt(store: Store) -> bytes:
    tree = _tree.new_tree(store.meta().max_depth)
    for s in store.iter_sequences():
        _tree.add(tree, s.seq_id, codec.to_token_array(s.tokens))
    return tree.serialize()


def test_resolve_store_path(tmp_path: Path) -> None:
    """Explicit path, else SUFDEC_STORE from the mapping given, else the platform default."""
    env = {"SUFDEC_STORE": str(tmp_path / "from-env")}
    assert resolve_store_path(tmp_path / "x", env) == tmp_path / "x"
    assert resolve_store_path("~/x", {}) == Path.home() / "x"
    assert resolve_store_path(None, env) == tmp_path / "from-env"
    assert resolve_store_path(None, {}) == default_store_path()
    # an empty value is a mistake, not the default (nor the current directory)
    for explicit, environ in (("", env), (" ", {}), (None, {"SUFDEC_STORE": ""})):
        with pytest.raises(EmptyStorePathError, match="empty"):
            resolve_store_path(explicit, environ)
    assert default_store_path().parts[-2:] == ("sufdec", "store")


def test_a_new_store_is_never_made_among_other_files(tmp_path: Path) -> None:
    """SUFDEC_STORE='~' (or a project folder) must not scatter a store's files among the
    user's: a directory that holds other files and no store is refused, untouched."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "notes.txt").write_text("mine")
    (home / ".bashrc").write_text("mine")
    with pytest.raises(NotEmptyDirectoryError, match=r"holds other files \(\.bashrc, notes\.txt\)"):
        Store.open(home, TOK)
    assert sorted(p.name for p in home.iterdir()) == [".bashrc", "notes.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    Store.open(empty, TOK).close()  # an empty directory takes a store
    Store.open(empty, TOK).close()  # and opens it again
    Store.open(tmp_path / "new" / "deep", TOK).close()


def test_store_ignores_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The path is resolved at the edge: Store.open and compact need one, never read SUFDEC_STORE."""
    from sufdec.store import compact_store

    monkeypatch.setenv("SUFDEC_STORE", str(tmp_path / "from-env"))
    for path in (None, ""):
        with pytest.raises(ValueError, match="resolve_store_path"):
            Store.open(path)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="resolve_store_path"):
            compact_store(path)  # type: ignore[arg-type]
    assert not (tmp_path / "from-env").exists()


def test_create_and_meta(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s", TOK, config=StoreConfig(max_depth=32)) as store:
        meta = store.meta()
        assert meta.magic == meta_mod.FORMAT_MAGIC and meta.format_version == meta_mod.FORMAT_VERSION
        assert meta.tokenizer == TOK and meta.max_depth == 32 and meta.next_seq_id == 0
        assert len(store) == 0 and not store.tree_loaded
    assert env_mod.open_count() == 0


def test_append_and_dedup(tmp_path: Path) -> None:
    with Store.open(tmp_path, TOK) as store:
        assert store.append([1, 2, 3], {"note": "a"}) == 0
        assert store.append([1, 2, 3]) is None
        assert store.append([4, 5]) == 1
        got = store.get(0)
        assert got is not None and got.tokens == [1, 2, 3] and got.source["note"] == "a"
        assert "time" in got.source and got.content_hash == codec.content_hash(
            codec.token_bytes(codec.to_token_array([1, 2, 3]))
        )
        assert store.find([4, 5]) == 1 and store.find([9]) is None and store.get(7) is None
        with pytest.raises(ValueError):
            store.append([])
        with pytest.raises(ValueError):
            store.append([1, -2])
        with pytest.raises(ValueError):
            store.append([1, 2**40])
        assert len(store) == 2 and store.stats().tokens == 5


def test_append_is_one_transaction(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with Store.open(tmp_path, TOK) as store:
        store.tree  # loaded: the append also extends it
        calls = []
        original = env_mod.StoreEnv.write
        monkeypatch.setattr(env_mod.StoreEnv, "write", lambda self, fn: calls.append(1) or original(self, fn))
        assert store.append([7, 8, 9]) == 0
        assert len(calls) == 1
        assert len(store.tree) == 1 and store.tree.num_tokens == 3


def test_add_many_batches_and_duplicates(tmp_path: Path) -> None:
    data = seqs(25)
    cfg = StoreConfig(txn_records=10)
    with Store.open(tmp_path, TOK, config=cfg) as store:
        summary = store.add_many(records(data + data[:3]))
        assert summary == AddSummary(added=25, duplicates=3, tokens_added=25 * 14, transactions=3)
        assert store.add_many(records(data)).added == 0
        assert [s.seq_id for s in store.iter_sequences(batch=4)] == list(range(25))
        assert [s.tokens for s in store.iter_sequences(start=20)] == data[20:]


def test_round_trip_log_replay_and_checkpoint(tmp_path: Path) -> None:
    data = seqs(40)
    with Store.open(tmp_path, TOK) as store:
        store.add_many(records(data[:20]))
        before = store.tree.serialize()
        assert store.stats().log_length == 20 and store.stats().snapshot_bytes == 0
    with Store.open(tmp_path, TOK) as store:  # no snapshot: pure log replay
        assert store.tree.serialize() == before == rebuilt(store)
        store.checkpoint()
        stats = store.stats()
        assert stats.log_length == 0 and stats.snapshot_bytes > 0 and stats.snapshot_log_pos == 20
        store.add_many(records(data[20:]))
        after = store.tree.serialize()
    with Store.open(tmp_path, TOK) as store:  # snapshot + log
        assert store.stats().log_length == 20
        assert store.tree.serialize() == after == rebuilt(store)
        assert len(store.tree) == 40
        assert verify(store) == []


def test_auto_checkpoint(tmp_path: Path) -> None:
    cfg = StoreConfig(checkpoint_records=5)
    with Store.open(tmp_path, TOK, config=cfg) as store:
        store.tree
        for t in seqs(12):
            store.append(t)
        stats = store.stats()
        assert stats.snapshot_log_pos == 10 and stats.log_length == 2
    cfg = StoreConfig(checkpoint_tokens=30)
    with Store.open(tmp_path / "t", TOK, config=cfg) as store:
        store.tree
        store.add_many(records(seqs(3, length=20)))
        assert store.stats().log_length == 0


def test_refresh_sees_other_writers(tmp_path: Path) -> None:
    reader = Store.open(tmp_path, TOK)
    writer = Store.open(tmp_path, TOK)
    try:
        assert len(reader.tree) == 0
        writer.append([1, 2, 3])
        assert len(reader.tree) == 0
        assert reader.refresh() == 1 and len(reader.tree) == 1
        writer.add_many(records(seqs(5)))
        writer.checkpoint()  # folds records the reader has not seen into the snapshot
        assert reader.refresh() == -1 and len(reader.tree) == 6
        writer.append([9, 9])
        assert reader.append([8, 8]) is not None  # the reader's own write catches it up too
        assert len(reader.tree) == 8
        reader.checkpoint()
        assert writer.refresh() == -1 and writer.tree.serialize() == reader.tree.serialize()
    finally:
        reader.close()
        writer.close()


def test_remove(tmp_path: Path) -> None:
    with Store.open(tmp_path, TOK) as store:
        store.add_many(records(seqs(4)))
        store.tree
        assert store.remove(1) and not store.remove(1)
        assert len(store.tree) == 3
        assert store.find(seqs(4)[1]) is None and store.append(seqs(4)[1]) == 4
    with Store.open(tmp_path, TOK) as store:
        assert len(store.tree) == 4
        assert [s.seq_id for s in store.iter_sequences()] == [0, 2, 3, 4]
        assert store.tree.serialize() == rebuilt(store) and verify(store) == []


def test_one_environment_per_path(tmp_path: Path) -> None:
    a = Store.open(tmp_path, TOK)
    b = Store.open(str(tmp_path) + "/.", TOK)
    assert a.dbs is b.dbs and env_mod.open_count() == 1
    a.close()
    assert b.append([1]) == 0
    b.close()
    assert env_mod.open_count() == 0
    with pytest.raises(StoreError):
        b.append([2])


def test_readonly(tmp_path: Path) -> None:
    with pytest.raises(StoreNotFoundError):
        Store.open(tmp_path / "none", readonly=True)
    with pytest.raises(StoreNotFoundError):
        Store.open(tmp_path / "none", create=False)
    with Store.open(tmp_path, TOK) as store:
        store.append([1, 2])
    with Store.open(tmp_path, readonly=True) as store:
        assert len(store.tree) == 1 and store.stats().sequences == 1
        with pytest.raises(StoreReadOnlyError):
            store.append([3])
        with pytest.raises(StoreReadOnlyError):
            store.checkpoint()
        with pytest.raises(StoreReadOnlyError):  # one Environment per path: it is read-only
            Store.open(tmp_path, TOK)


def test_tokenizer_checks(tmp_path: Path) -> None:
    with Store.open(tmp_path / "a", TOK):
        pass
    with pytest.raises(TokenizerMismatchError, match="was built with tokenizer 'bytes'"):
        Store.open(tmp_path / "a", TokenizerInfo("other", "fp-other"))
    assert env_mod.open_count() == 0
    with Store.open(tmp_path / "a") as store:  # no tokenizer: accept what is recorded
        assert store.meta().tokenizer == TOK
    with Store.open(tmp_path / "b") as store:
        assert store.meta().tokenizer is None
    with Store.open(tmp_path / "b", TOK) as store:  # adopts the first tokenizer it sees
        assert store.meta().tokenizer == TOK


def _put_meta(path: Path, **values: object) -> None:
    env = lmdb.open(str(path), max_dbs=8)
    db = env.open_db(b"meta")
    with env.begin(write=True) as txn:
        meta_mod.write_raw(txn, db, dict(values))
    env.close()


def test_newer_format_refused(tmp_path: Path) -> None:
    with Store.open(tmp_path, TOK):
        pass
    _put_meta(tmp_path, format_version=meta_mod.FORMAT_VERSION + 1)
    with pytest.raises(FormatTooNewError, match="upgrade sufdec"):
        Store.open(tmp_path, TOK)
    with pytest.raises(FormatTooNewError):
        Store.open(tmp_path, readonly=True)
    assert env_mod.open_count() == 0


def test_migration_runs_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with Store.open(tmp_path, TOK) as store:
        store.append([1, 2, 3])
    ran: list[int] = []

    def v1_to_v2(txn, dbs, raw):
        ran.append(1)
        raw["renamed_field"] = raw["tokenizer_name"]

    def v2_to_v3(txn, dbs, raw):
        ran.append(2)
        assert raw["format_version"] == 2

    monkeypatch.setattr(meta_mod, "FORMAT_VERSION", 3)
    monkeypatch.setattr(migrations, "MIGRATIONS", {1: v1_to_v2, 2: v2_to_v3})
    with pytest.raises(MigrationRequiredError):
        Store.open(tmp_path, readonly=True)
    with Store.open(tmp_path, TOK) as store:
        assert ran == [1, 2] and store.meta().format_version == 3
        assert store.get(0).tokens == [1, 2, 3]
    with Store.open(tmp_path, TOK):
        assert ran == [1, 2]  # migrated once
    monkeypatch.setattr(meta_mod, "FORMAT_VERSION", 4)
    with pytest.raises(StoreError, match="no migration from store format 3"):
        Store.open(tmp_path, TOK)


def test_not_a_store(tmp_path: Path) -> None:
    env = lmdb.open(str(tmp_path), max_dbs=8)
    db = env.open_db(b"meta")
    with env.begin(write=True) as txn:
        txn.put(b"magic", codec.pack("something-else"), db=db)
    env.close()
    with pytest.raises(NotAStoreError):
        Store.open(tmp_path, TOK)


def test_corrupt_snapshot_detected_and_repaired(tmp_path: Path) -> None:
    with Store.open(tmp_path, TOK) as store:
        store.add_many(records(seqs(10)))
        store.checkpoint()
        good = store.tree.serialize()
    env = lmdb.open(str(tmp_path), max_dbs=8)
    db = env.open_db(b"snapshot")
    with env.begin(write=True) as txn:
        txn.put(codec.u64_key(0), b"garbage", db=db)
    env.close()
    with Store.open(tmp_path, TOK) as store:
        with pytest.raises(StoreCorruptError):
            store.tree
        assert any("digest" in p for p in verify(store))
        repair_store(store)
        assert verify(store) == [] and store.tree.serialize() == good
    with Store.open(tmp_path, TOK) as store:
        assert store.tree.serialize() == good


FORK_SCRIPT = """
import os, sys
sys.path.insert(0, sys.argv[2])
from tests.store.helpers import TOK, use_fake_tree_if_needed
use_fake_tree_if_needed()
from sufdec.store import ForkedStoreError, Store
store = Store.open(sys.argv[1], TOK)
store.append([1])
pid = os.fork()
if pid == 0:  # the inherited store and a reopen of its path must both refuse
    code = 1
    try:
        try:
            store.append([2])
        except ForkedStoreError:
            try:
                Store.open(sys.argv[1], TOK)
            except ForkedStoreError:
                code = 0
    finally:
        os._exit(code)
_, status = os.waitpid(pid, 0)
assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
assert store.refresh() == 0 and len(store) == 1 and store.append([2]) == 1
store.close()
print("ok")
"""


def test_fork_is_refused(tmp_path: Path) -> None:
    """Run in a fresh interpreter: forking the (multi-threaded) test runner is unsafe."""
    root = str(Path(__file__).resolve().parents[2])
    out = subprocess.run(
        [sys.executable, "-c", FORK_SCRIPT, str(tmp_path), root], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_import_is_light(tmp_path: Path) -> None:
    """Importing the store (and opening one, loading its tree) never pulls in torch."""
    code = (
        "import sys, time; t = time.perf_counter(); import sufdec.store, sufdec.store.ingest; "
        "dt = time.perf_counter() - t; "
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'heavy import'; "
        "s = sufdec.store.Store.open(sys.argv[1]); s.append([1, 2, 3]); len(s.tree); s.close(); "
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'heavy import'; "
        "print(dt)"
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True)
    assert float(out.stdout) < 1.0


def test_failed_tree_update_drops_the_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A refresh that fails half-way must not leave a half-updated tree behind."""
    reader, writer = Store.open(tmp_path, TOK), Store.open(tmp_path, TOK)
    try:
        reader.tree
        writer.add_many(records(seqs(6)))
        real_add, calls = _tree.add, []

        def flaky(tree, seq_id, tokens):
            calls.append(seq_id)
            if len(calls) == 3:
                raise RuntimeError("boom")
            real_add(tree, seq_id, tokens)

        monkeypatch.setattr(_tree, "add", flaky)
        with pytest.raises(RuntimeError):
            reader.refresh()
        assert not reader.tree_loaded
        monkeypatch.setattr(_tree, "add", real_add)
        assert len(reader.tree) == 6 and reader.tree.serialize() == rebuilt(reader)
    finally:
        reader.close()
        writer.close()
