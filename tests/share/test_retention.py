"""The shared table's retention: a setting kept in the database, applied by whichever host
syncs when it is due; a host that joins later replays only what is kept. Also ``evict``
and ``compact`` with ``--share``: what a host queued goes out before they change its store."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from sufdec.cli.app import app
from sufdec.share import Replica, Retention, SharedTable
from sufdec.store import Store, TokenizerInfo

TOK, OTHER = TokenizerInfo("toy", "fp-toy"), TokenizerInfo("toy2", "fp-other")
runner = CliRunner()


def outputs(n: int, base: int = 0) -> list[list[int]]:
    return [[base + i, base + i + 1, 7, 8, base + i + 2] for i in range(n)]


def _table_rows(url: str, tokenizer: str) -> int:
    table = SharedTable(url)
    try:
        return table.summary(tokenizer).rows
    finally:
        table.close()


def test_keep_rows_keeps_the_newest_of_each_tokenizer(tmp_path, share_url) -> None:
    a, b = Store.open(tmp_path / "a", TOK), Store.open(tmp_path / "b", OTHER)
    ra, rb = Replica(a, share_url), Replica(b, share_url)
    for ids in outputs(6):
        a.append(ids)
    for ids in outputs(2, 50):
        b.append(ids)
    assert ra.sync().pushed == 6 and rb.sync().pushed == 2
    table = SharedTable(share_url)
    try:
        assert table.retention().off
        table.set_retention(Retention(keep_rows=3))
        assert table.retention() == Retention(None, 3)
        assert table.apply_retention() == 3  # of a's six, the three oldest; b's two are within 3
        assert table.apply_retention(every_s=600) is None  # applied a moment ago: not due
        assert table.apply_retention(every_s=0) == 0
    finally:
        table.close()
    assert (_table_rows(share_url, "fp-toy"), _table_rows(share_url, "fp-other")) == (3, 2)
    late = Store.open(tmp_path / "late", TOK)
    assert Replica(late, share_url).sync().pulled == 3
    assert sorted(s.tokens for s in late.iter_sequences()) == sorted(outputs(6)[3:])
    for st in (a, b, late):
        st.close()


def test_a_syncing_host_applies_the_setting_when_due(tmp_path, share_url) -> None:
    a = Store.open(tmp_path / "a", TOK)
    first = Replica(a, share_url)  # sharing on before anything is learned: all of it is queued
    for ids in outputs(4):
        a.append(ids)
    assert first.sync().pushed == 4
    table = SharedTable(share_url)
    try:
        table.set_retention(Retention(keep_days=1.0))
        table.conn.execute("UPDATE sufdec_shared SET created = now() - interval '2 days' WHERE id <= 2")
    finally:
        table.close()
    ra = Replica(a, share_url, retain_every_s=0.0)  # due at once (the default: every 10 minutes)
    assert ra.sync().trimmed == 2
    assert ra.sync().trimmed == 0  # a replica asks at most once a minute
    assert _table_rows(share_url, "fp-toy") == 2
    assert len(a) == 4  # the table's retention never touches a host's store
    a.close()


def test_retention_rejects_what_makes_no_sense() -> None:
    with pytest.raises(ValueError):
        Retention(keep_days=-1.0)
    with pytest.raises(ValueError):
        Retention(keep_days=float("nan"))
    with pytest.raises(ValueError):
        Retention(keep_rows=-3)
    assert str(Retention()) == "everything (no retention set)"
    assert str(Retention(7, 1000)) == "the last 7 days and the newest 1,000 outputs of each tokenizer"


def _run(*args):
    res = runner.invoke(app, [str(a) for a in args])
    res.said = " ".join(res.output.split())
    return res


def test_the_retention_command_sets_shows_and_applies(tmp_path, share_url) -> None:
    a = Store.open(tmp_path / "a", TOK)
    first = Replica(a, share_url)
    for ids in outputs(5):
        a.append(ids)
    assert first.sync().pushed == 5
    a.close()
    res = _run("share", "retention", "--share", share_url)
    assert res.exit_code == 0 and "keeps everything (no retention set)" in res.said, res.output
    res = _run("share", "retention", "--keep-rows", "2", "--keep-days", "30", "--share", share_url)
    assert res.exit_code == 0, res.output
    assert "keeps the last 30 days and the newest 2 outputs of each tokenizer; deleted 3 outputs" in res.said
    res = _run("share", "status", "--store", tmp_path / "a", "--share", share_url, "--json")
    info = json.loads(res.stdout.strip().splitlines()[-1])
    assert info["retention"] == {"keep_days": 30.0, "keep_rows": 2} and info["table_rows"] == 2
    res = _run("share", "retention", "--off", "--share", share_url)
    assert res.exit_code == 0 and "keeps everything" in res.said
    assert _run("share", "retention", "--off", "--keep-rows", "3", "--share", share_url).exit_code == 2
    assert _run("share", "retention", "--keep-rows", "-1", "--share", share_url).exit_code == 2


def test_evict_and_compact_publish_what_was_queued_first(tmp_path, share_url) -> None:
    path = tmp_path / "a"
    a = Store.open(path, TOK)
    Replica(a, share_url)  # sharing turned on: what is learned from here on is queued
    for ids in outputs(6):
        a.append(ids)
    a.close()
    res = _run("evict", "--store", path, "--max-tokens", "10", "--share", share_url, "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout.strip().splitlines()[-1])["sequences"] == 2
    assert _run_rows(share_url) == 6  # published before the eviction dropped four of them
    other = Store.open(tmp_path / "b", TOK)
    Replica(other, share_url).sync()
    other.append(outputs(1, 90)[0])
    Replica(other, share_url).sync()
    other.close()
    res = _run("compact", "--store", path, "--share", share_url, "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout.strip().splitlines()[-1])["sequences"] == 3  # caught up, then compacted


def _run_rows(url: str) -> int:
    return _table_rows(url, "fp-toy")
