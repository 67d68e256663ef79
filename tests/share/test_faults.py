"""Sharing under faults, with a real PostgreSQL and hosts in their own processes: four
hosts learn from each other; PostgreSQL killed mid-run and brought back; a host killed
mid-publish neither loses an acknowledged output nor duplicates one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sufdec.share import Replica, SharedTable
from sufdec.store import Store, TokenizerInfo

CHILD = Path(__file__).with_name("host_child.py")
ROOT = Path(__file__).resolve().parents[2]
TOK = TokenizerInfo("toy", "fp-toy")


def host(store, url, first, count, follow_s, expect) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [sys.executable, str(CHILD), str(store), url, str(first), str(count), str(follow_s), str(expect)]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def contents(path) -> set[tuple[int, ...]]:
    with Store.open(path, readonly=True, create=False) as st:
        return {tuple(s.tokens) for s in st.iter_sequences()}


def table_rows(url) -> list:
    table = SharedTable(url)
    try:
        return table.pull(TOK.fingerprint, 0, 100_000)
    finally:
        table.close()


@pytest.mark.slow
def test_four_hosts_learn_from_each_other(tmp_path, share_url) -> None:
    procs = [host(tmp_path / f"h{i}", share_url, 1000 * i, 25, 60, 100) for i in range(4)]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        assert json.loads(out.splitlines()[-1])["sequences"] == 100
    stores = [contents(tmp_path / f"h{i}") for i in range(4)]
    assert all(s == stores[0] for s in stores) and len(stores[0]) == 100
    assert len(table_rows(share_url)) == 100  # one row per output, whoever learned it


def _wait(predicate, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.mark.slow
def test_postgres_killed_mid_run_never_blocks_and_nothing_is_lost(tmp_path, share_url, postgres) -> None:
    a, b = Store.open(tmp_path / "a", TOK), Store.open(tmp_path / "b", TOK)
    ra, rb = Replica(a, share_url, poll_s=0.2).start(), Replica(b, share_url, poll_s=0.2).start()
    try:
        for n in range(5):
            a.append([n, 1, 2, 3])
        assert _wait(lambda: len(b) == 5, 15)
        postgres.stop("kill")
        slowest = 0.0
        for n in range(5, 10):  # learning goes on at local speed while PostgreSQL is gone
            t0 = time.perf_counter()
            a.append([n, 1, 2, 3])
            slowest = max(slowest, time.perf_counter() - t0)
        assert slowest < 0.5
        assert _wait(lambda: ra.last_error is not None, 15)
        postgres.start()
        assert _wait(lambda: len(b) == 10, 60), (len(b), ra.last_error, rb.last_error)
    finally:
        ra.stop()
        rb.stop()
        a.close()
        b.close()
    assert len(table_rows(share_url)) == 10


@pytest.mark.slow
def test_a_host_killed_mid_publish_loses_and_duplicates_nothing(tmp_path, share_url) -> None:
    store = tmp_path / "a"
    learned, mid_publish = 0, 0
    for round_ in range(3):
        before = len(table_rows(share_url))
        child = host(store, share_url, 10_000 * round_, 1500, 0, 0)
        assert child.stdout.readline().strip() == "learned"  # acknowledged: in the store from here on
        learned += 1500
        assert _wait(lambda: len(table_rows(share_url)) > before, 60)  # its first batch is in the table
        child.send_signal(signal.SIGKILL)
        child.wait(30)
        mid_publish += len(table_rows(share_url)) < learned  # killed with batches still to send
    assert mid_publish >= 2
    last = host(store, share_url, 0, 0, 0, 0)  # a last run publishes whatever is still queued
    out, err = last.communicate(timeout=120)
    assert last.returncode == 0, err
    local = contents(store)
    rows = table_rows(share_url)
    assert len(local) == learned
    assert {tuple(decoded(r.tokens)) for r in rows} == local  # every output, and
    assert len(rows) == len(local)  # each once


def decoded(raw: bytes) -> list[int]:
    from sufdec.store import decode_tokens

    return decode_tokens(raw)


def test_a_frozen_server_never_holds_up_learning_or_exit(tmp_path, share_url, postgres, caplog) -> None:
    """PostgreSQL stopped (SIGSTOP to every server process: connections stay open, nothing
    answers): learning goes on at local speed, stopping the follower returns after its
    timeout with the outputs queued (one line says so), and they go out once the server
    answers again."""
    import threading

    a = Store.open(tmp_path / "a", TOK)
    ra = Replica(a, share_url, poll_s=0.1).start()
    a.append([1, 1, 2, 3])
    assert _wait(lambda: len(table_rows(share_url)) == 1, 15)
    postgres.freeze()
    try:
        slowest = 0.0
        for n in range(2, 7):
            t0 = time.perf_counter()
            a.append([n, 1, 2, 3])
            slowest = max(slowest, time.perf_counter() - t0)
            ra.kick()
            time.sleep(0.1)  # the follower goes into a call the server does not answer
        assert slowest < 0.5
        stopper = threading.Thread(target=ra.stop, kwargs={"timeout_s": 1.0}, daemon=True)
        with caplog.at_level("WARNING", logger="sufdec.share"):
            stopper.start()
            stopper.join(10.0)
        assert not stopper.is_alive(), "stopping the follower waited for a frozen server"
        assert "does not answer; what is not published stays queued in the store" in caplog.text
    finally:
        postgres.freeze(False)
    again = Replica(a, share_url)
    again.sync()
    assert len(table_rows(share_url)) == 6
    ra.close()
    again.close()
    a.close()
