"""A real full file system (issue 12, item 7): a 16 MiB tmpfs, filled to several levels
before `sufdec index` creates a store on it or adds to one. Each failure is one line,
never SIGBUS (LMDB maps ``lock.mdb``; on a full tmpfs touching an unbacked page of it
kills the process), nothing committed is lost, and once space is freed the same command
completes and the store verifies.

Needs ``mount -t tmpfs`` (root, CAP_SYS_ADMIN): skipped with the reason elsewhere.
Subprocesses, since a SIGBUS would kill the test runner."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
WORDS = "SELECT name FROM singer WHERE age > 30 AND country = 'France' ORDER BY DESC LIMIT 1".split()


@pytest.fixture
def small_fs(tmp_path: Path):
    mnt = tmp_path / "fs"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sufdec", *args], capture_output=True, text=True, timeout=120, cwd=REPO
    )


def _fill(fs: Path, leave: int) -> Path:
    """A file that leaves about ``leave`` bytes free on ``fs``."""
    filler = fs / "filler"
    st = os.statvfs(fs)
    free = st.f_bavail * st.f_frsize
    with open(filler, "ab") as f:
        f.write(bytes(max(0, free - leave)))
    return filler


def _corpus(path: Path, n: int, seed: int) -> Path:
    rng = random.Random(seed)
    path.write_text(
        "".join(json.dumps({"text": " ".join(rng.choices(WORDS, k=60)) + f" {seed} {i}"}) + "\n" for i in range(n))
    )
    return path


def _one_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 1, (proc.returncode, proc.stderr[-2000:])  # 135 = SIGBUS
    errors = [x for x in proc.stderr.splitlines() if x.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    return errors[0]


@pytest.mark.parametrize("leave", [0, 4 << 10, 12 << 10, 44 << 10])
def test_creating_a_store_on_a_full_file_system(
    small_fs: Path, tmp_path: Path, word_tokenizer_dir: Path, leave: int
) -> None:
    src = _corpus(tmp_path / "in.jsonl", 300, 0)
    filler = _fill(small_fs, leave)
    args = ["index", str(src), "--store", str(small_fs / "s"), "--tokenizer", str(word_tokenizer_dir), "--json"]
    line = _one_line(cli(*args))
    assert "full" in line or "space" in line, line
    filler.unlink()
    done = cli(*args)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["store_sequences"] == 300
    assert cli("verify", "--store", str(small_fs / "s")).returncode == 0


def test_indexing_onto_a_full_file_system_loses_nothing(
    small_fs: Path, tmp_path: Path, word_tokenizer_dir: Path
) -> None:
    store = small_fs / "s"
    first = _corpus(tmp_path / "first.jsonl", 50, 1)
    base = ["--store", str(store), "--tokenizer", str(word_tokenizer_dir), "--json"]
    assert cli("index", str(first), *base).returncode == 0
    filler = _fill(small_fs, 200 << 10)
    more = _corpus(tmp_path / "more.jsonl", 600, 2)
    line = _one_line(cli("index", str(more), *base, "--txn-records", "100"))
    assert "full" in line and "committed" in line, line
    check = cli("verify", "--store", str(store), "--json")
    assert check.returncode == 0, check.stdout + check.stderr
    kept = json.loads(check.stdout)["sequences"]
    assert kept >= 50
    filler.unlink()
    done = cli("index", str(more), *base)
    assert done.returncode == 0 and json.loads(done.stdout)["store_sequences"] == 650, done.stderr[-2000:]
