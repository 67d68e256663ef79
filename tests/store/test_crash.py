"""SIGKILL a writing process at random moments: the store keeps exactly what was
committed (each sequence once, whole, matching its hash), opens cleanly, its tree equals a
rebuild from the stored sequences, and running the writer again completes the rest."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sufdec.store import Store, _tree, codec
from sufdec.store.verify import verify

from .crash_child import CONFIG
from .helpers import TOK, encode

CHILD = Path(__file__).with_name("crash_child.py")


def make_data(path: Path, n: int, seed: int) -> list[list[int]]:
    rng = random.Random(seed)
    texts = [f"record {i} " + "xyz"[i % 3] * rng.randint(5, 200) for i in range(n)]
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    return encode(texts)


def start(store: Path, data: Path, mode: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), str(store), str(data), mode], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def kill_at_random(proc: subprocess.Popen, rng: random.Random, max_steps: int) -> bool:
    """SIGKILL after a random number of progress steps plus a random few milliseconds
    (so the kill lands anywhere in a transaction or checkpoint); True if it was still running."""
    assert proc.stdout is not None
    for _ in range(rng.randint(1, max_steps)):
        if proc.stdout.readline().strip() != "p":
            break
    time.sleep(rng.uniform(0.0, 0.01))
    alive = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    return alive


def finish(proc: subprocess.Popen) -> int:
    assert proc.stdout is not None
    proc.stdout.read()  # drain progress lines so the child never blocks on the pipe
    return proc.wait(timeout=120)


def check(store: Store, expected: list[list[int]]) -> int:
    """The store holds a prefix of ``expected``, each once, and is consistent."""
    assert verify(store) == []
    got = [s.tokens for s in store.iter_sequences()]
    assert got == expected[: len(got)]
    rebuilt = _tree.new_tree(store.meta().max_depth)
    for s in store.iter_sequences():
        _tree.add(rebuilt, s.seq_id, codec.to_token_array(s.tokens))
    assert store.tree.serialize() == rebuilt.serialize()
    return len(got)


def crash_loop(tmp_path: Path, mode: str, n: int, kills: int, max_steps: int, seed: int) -> None:
    rng = random.Random(seed)
    data = tmp_path / "data.jsonl"
    expected = make_data(data, n, seed)
    path = tmp_path / "store"
    counts = []
    for _ in range(kills):
        killed = kill_at_random(start(path, data, mode), rng, max_steps)
        with Store.open(path, TOK, config=CONFIG) as store:
            counts.append(check(store, expected))
        if not killed:
            break
    assert finish(start(path, data, mode)) == 0
    with Store.open(path, TOK, config=CONFIG) as store:
        assert check(store, expected) == n
        assert store.stats().sequences == n
    assert counts == sorted(counts)


def test_sigkill_during_ingest(tmp_path: Path) -> None:
    crash_loop(tmp_path, "ingest", n=2000, kills=3, max_steps=60, seed=1)


@pytest.mark.slow
def test_sigkill_during_ingest_many(tmp_path: Path) -> None:
    crash_loop(tmp_path, "ingest", n=4000, kills=8, max_steps=80, seed=2)


@pytest.mark.slow
def test_sigkill_during_appends_and_checkpoints(tmp_path: Path) -> None:
    """Online appends (one transaction each) with frequent checkpoints, while this
    process keeps the store open and picks up the child's writes with refresh()."""
    rng = random.Random(3)
    data = tmp_path / "data.jsonl"
    expected = make_data(data, 400, 3)
    path = tmp_path / "store"
    with Store.open(path, TOK, config=CONFIG) as watcher:
        watcher.tree
        for _ in range(5):
            kill_at_random(start(path, data, "append"), rng, 80)
            watcher.refresh()
            check(watcher, expected)
        assert finish(start(path, data, "append")) == 0
        watcher.refresh()
        assert check(watcher, expected) == 400
