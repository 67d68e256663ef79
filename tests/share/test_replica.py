"""Stores on separate "hosts" (separate folders) learn from each other through a real
PostgreSQL table: publish, follow, duplicates dropped, other tokenizers kept apart."""

from __future__ import annotations

import pytest

from sufdec.share import Replica, SharedTable, ShareError
from sufdec.store import SequenceRecord, Store, TokenizerInfo

TOK = TokenizerInfo("toy", "fp-toy")


def open_store(path, tok=TOK) -> Store:
    return Store.open(path, tok)


def outputs(n: int, base: int = 0) -> list[list[int]]:
    return [[base + i, base + i + 1, 7, 8, base + i + 2] for i in range(n)]


def test_two_hosts_learn_from_each_other(tmp_path, share_url) -> None:
    a, b = open_store(tmp_path / "a"), open_store(tmp_path / "b")
    ra, rb = Replica(a, share_url), Replica(b, share_url)
    for ids in outputs(5):
        a.append(ids, {"from": "generate"})
    assert ra.queued() == 5
    s = ra.sync()
    assert (s.pushed, ra.queued()) == (5, 0)
    s = rb.sync()
    assert s.pulled == 5 and len(b) == 5
    assert sorted(x.tokens for x in b.iter_sequences()) == sorted(outputs(5))
    sources = {x.source["host"] for x in b.iter_sequences()}
    assert sources == {ra.host} and all(x.source["from"] == "share" for x in b.iter_sequences())
    # b learns something of its own, and one output a has too: a gets only the new one
    b.append(outputs(1, 100)[0])
    b.append(outputs(1)[0])  # a duplicate in b's store: not stored, so not published
    assert rb.sync().pushed == 1
    assert ra.sync().pulled == 1 and len(a) == 6
    # nothing comes back to where it came from, and a second round moves nothing
    assert ra.sync() == rb.sync() == type(ra.sync())()
    assert len(a) == len(b) == 6
    for st in (a, b):
        st.close()


def test_history_stays_local_until_pushed(tmp_path, share_url) -> None:
    a, b = open_store(tmp_path / "a"), open_store(tmp_path / "b")
    a.add_many(SequenceRecord(ids) for ids in outputs(4))
    ra, rb = Replica(a, share_url), Replica(b, share_url)
    assert ra.queued() == 0 and ra.sync().pushed == 0
    assert ra.push_history().pushed == 4
    assert ra.push_history().pushed == 0  # the table has them: no second copy
    assert rb.sync().pulled == 4
    a.close()
    b.close()


def test_other_tokenizers_are_kept_apart(tmp_path, share_url) -> None:
    a = open_store(tmp_path / "a")
    c = open_store(tmp_path / "c", TokenizerInfo("other", "fp-other"))
    ra, rc = Replica(a, share_url), Replica(c, share_url)
    a.append(outputs(1)[0])
    assert ra.sync().pushed == 1
    assert rc.sync() == type(rc.sync())() and len(c) == 0
    a.close()
    c.close()


def test_cursors_survive_a_restart(tmp_path, share_url) -> None:
    a, b = open_store(tmp_path / "a"), open_store(tmp_path / "b")
    ra = Replica(a, share_url)
    for ids in outputs(3):
        a.append(ids)
    ra.sync()
    assert Replica(b, share_url).sync().pulled == 3
    b.close()
    b = open_store(tmp_path / "b")
    rb = Replica(b, share_url)
    assert rb.cursors()[1] > 0 and rb.sync().seen == 0  # nothing pulled twice
    host = rb.host
    b.close()
    b = open_store(tmp_path / "b")
    assert Replica(b, share_url).host == host  # one host id per store
    a.close()
    b.close()


def test_an_unreachable_database_is_one_error_and_loses_nothing(tmp_path) -> None:
    a = open_store(tmp_path / "a")
    a.append(outputs(1)[0])
    r = Replica(a, "postgresql://postgres@127.0.0.1:9/none")
    with pytest.raises(ShareError, match="cannot reach PostgreSQL at"):
        r.sync()
    a.append(outputs(1, 50)[0])
    assert r.queued() == 1  # learned after sharing began: queued in the store
    a.close()


def test_a_damaged_row_is_skipped_not_fatal(tmp_path, share_url) -> None:
    table = SharedTable(share_url)
    table.publish(TOK.fingerprint, "elsewhere", [(b"\x01\x00\x00", b"d" * 16, {})])  # 3 bytes: no whole id
    table.publish(TOK.fingerprint, "elsewhere", [(b"\x05\x00\x00\x00", b"e" * 16, {})])
    table.close()
    b = open_store(tmp_path / "b")
    s = Replica(b, share_url).sync()
    assert (s.seen, s.pulled, len(b)) == (2, 1, 1)
    b.close()


def test_catching_up_reports_progress_batch_by_batch(tmp_path, share_url) -> None:
    a, b = open_store(tmp_path / "a"), open_store(tmp_path / "b")
    ra = Replica(a, share_url)
    a.add_many(SequenceRecord(ids) for ids in outputs(1200))
    assert ra.sync().pushed == 1200
    calls: list[tuple[int, int]] = []
    assert Replica(b, share_url).sync(on_pull=lambda done, total: calls.append((done, total))).pulled == 1200
    assert calls == [(500, 1200), (1000, 1200), (1200, 1200)]  # batches of 500, against the lag at the start
    a.close()
    b.close()
