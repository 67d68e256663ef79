"""Budgets: the oldest sequences are evicted in the write transaction that exceeds the
budget, the tree follows (also in other processes, through the log), the budget is
recorded and kept by later opens, and compaction gives the space back."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sufdec.store import SequenceRecord, Store, StoreConfig, StoreLockedError, compact_store
from sufdec.store.evict import Budget
from sufdec.store.verify import verify

from .helpers import TOK


def seq(i: int, length: int = 10) -> list[int]:
    return [i % 250 + 1, i // 250 + 1] + [(i * 7 + j) % 251 for j in range(length - 2)]


def ids(store: Store) -> list[int]:
    return [s.seq_id for s in store.iter_sequences()]


def test_token_budget_evicts_oldest_in_the_same_write(tmp_path: Path) -> None:
    with Store.open(tmp_path, TOK, config=StoreConfig(max_tokens=100)) as store:
        store.tree
        for i in range(10):
            store.append(seq(i))
        assert store.stats().tokens == 100 and len(store) == 10
        store.append(seq(10))  # 110 tokens: the oldest goes in the same transaction
        assert ids(store) == list(range(1, 11)) and store.stats().tokens == 100
        assert store.find(seq(0)) is None and verify(store) == []
        assert len(store.tree) == 10 and 0 not in store.tree
        summary = store.add_many([SequenceRecord(seq(i), {}) for i in range(11, 16)])
        assert summary.added == 5 and ids(store) == list(range(6, 16))
    with Store.open(tmp_path, TOK) as store:  # the budget is recorded and kept
        assert store.budget == Budget(max_tokens=100)
        store.append(seq(16))
        assert ids(store) == list(range(7, 17)) and verify(store) == []


def test_budget_override_and_reader_follows(tmp_path: Path) -> None:
    with Store.open(tmp_path, TOK) as writer:
        writer.add_many([SequenceRecord(seq(i), {}) for i in range(20)])
    with Store.open(tmp_path, TOK) as reader:  # another Store object: its own tree, replays the log
        reader.tree
        with Store.open(tmp_path, TOK, config=StoreConfig(max_tokens=50)) as writer:
            pass  # records the budget; enforced at the next write
        with Store.open(tmp_path, TOK) as writer:
            assert writer.budget.max_tokens == 50 and len(writer) == 20
            assert writer.evict().sequences == 15
        reader.refresh()
        assert len(reader.tree) == 5 and verify(reader) == []


def test_byte_budget_and_explicit_evict(tmp_path: Path) -> None:
    with Store.open(tmp_path, TOK) as store:
        store.add_many([SequenceRecord(seq(i, 500), {}) for i in range(200)])  # ~400 KB of tokens
        summary = store.evict(Budget(max_bytes=100_000))
        assert summary.sequences > 100 and store.budget.unlimited  # not recorded
        from sufdec.store.evict import record_bytes

        used = store.read_txn(lambda txn: record_bytes(txn, store.dbs))
        assert used <= 100_000 and ids(store)[-1] == 199 and verify(store) == []


def test_lru_touch_keeps_reappended_outputs(tmp_path: Path) -> None:
    with Store.open(tmp_path, TOK, config=StoreConfig(max_tokens=30, eviction="lru")) as store:
        store.tree
        for i in range(3):
            store.append(seq(i))
        assert store.append(seq(0)) is None  # a duplicate: touched (moved to the back)
        store.append(seq(3))  # evicts the least recently appended: seq(1)
        kept = [s.tokens for s in store.iter_sequences()]
        assert kept == [seq(2), seq(0), seq(3)] and verify(store) == []
        assert len(store.tree) == 3


def test_bad_budget_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        Store.open(tmp_path, TOK, config=StoreConfig(max_tokens=-1))
    with pytest.raises(ValueError):
        Store.open(tmp_path, TOK, config=StoreConfig(eviction="random"))


def test_compact_shrinks_and_keeps_everything(tmp_path: Path) -> None:
    with Store.open(tmp_path, TOK) as store:
        store.add_many([SequenceRecord(seq(i, 300), {}) for i in range(200)])
        store.checkpoint()
        store.evict(Budget(max_tokens=6_000))
        kept = [s.tokens for s in store.iter_sequences()]
    summary = compact_store(tmp_path)
    assert summary.after_bytes < summary.before_bytes
    with Store.open(tmp_path, TOK) as store:
        assert [s.tokens for s in store.iter_sequences()] == kept and verify(store) == []
        assert store.append(seq(9999)) is not None  # still writable after the swap
        with pytest.raises(StoreLockedError, match="this process"):
            compact_store(tmp_path)


def test_compact_refused_while_another_process_has_it_open(tmp_path: Path) -> None:
    with Store.open(tmp_path, TOK) as store:
        store.append([1, 2, 3])
    code = (
        "import sys, time; from sufdec.store import Store;"
        f"s = Store.open({str(tmp_path)!r}); print('open', flush=True); sys.stdin.readline()"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "open"
        with pytest.raises(StoreLockedError, match="open in another process"):
            compact_store(tmp_path)
    finally:
        proc.communicate("\n", timeout=30)
    assert compact_store(tmp_path).sequences == 1
