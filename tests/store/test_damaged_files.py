"""Damaged data files through the real CLI (issue 12, item 6): truncated (SIGBUS before),
zeroed or random (lmdb.InvalidError), a damaged B-tree page (lmdb.CorruptedError) and an
empty ``data.mdb`` (which `verify --repair` silently turned into an empty store). Each is
one ``error:`` line, exit 1, no traceback, and the damaged file is left as it was.

Subprocesses: a SIGBUS would kill the test runner itself."""

from __future__ import annotations

import json
import os
import random
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sufdec.cli.app import app

REPO = Path(__file__).resolve().parents[2]
WORDS = "SELECT name FROM singer WHERE age > 30 AND country = 'France' ORDER BY DESC LIMIT 1".split()


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sufdec", *args], capture_output=True, text=True, timeout=120, cwd=REPO
    )


def one_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    errors = [x for x in proc.stderr.splitlines() if x.startswith("error:")]
    assert proc.returncode == 1, (proc.returncode, proc.stderr[-2000:])
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    rng = random.Random(1)
    rows = [" ".join(rng.choices(WORDS, k=rng.randint(5, 60))) + f" {i}" for i in range(3000)]
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps({"text": r}) + "\n" for r in rows))
    return path


@pytest.fixture
def store(tmp_path: Path, corpus: Path, word_tokenizer_dir: Path) -> Path:
    res = CliRunner().invoke(
        app, ["index", str(corpus), "--store", str(tmp_path / "s"), "--tokenizer", str(word_tokenizer_dir)]
    )
    assert res.exit_code == 0, res.output
    return tmp_path / "s"


def _commands(store: Path, corpus: Path, tok: Path) -> dict[str, list[str]]:
    s = ["--store", str(store)]
    return {
        "stats": ["stats", *s],
        "verify": ["verify", *s],
        "repair": ["verify", "--repair", *s],
        "index": ["index", str(corpus), *s, "--tokenizer", str(tok)],
        "compact": ["compact", *s],
    }


@pytest.mark.parametrize(
    "damage, needle",
    [("truncated", "truncated"), ("zeroed", "not an LMDB"), ("random", "not an LMDB"), ("empty", "empty")],
)
def test_a_damaged_data_file_is_one_line_everywhere(store, corpus, word_tokenizer_dir, damage, needle) -> None:
    data = store / "data.mdb"
    size = data.stat().st_size
    if damage == "truncated":
        os.truncate(data, size // 2)
    elif damage == "zeroed":
        data.write_bytes(bytes(size))
    elif damage == "random":
        data.write_bytes(random.Random(0).randbytes(size))
    else:
        os.truncate(data, 0)
    damaged = data.read_bytes()
    for name, args in _commands(store, corpus, word_tokenizer_dir).items():
        line = one_error(cli(*args), needle)
        assert "restore" in line or "delete" in line, (name, line)
        assert data.read_bytes() == damaged, name  # nothing wrote into it, nothing recreated it


def _sequences_root_page(data: Path) -> tuple[int, int]:
    """(page size, page number) of the root page of the ``sequences`` database."""
    raw = data.read_bytes()

    def meta(off: int) -> tuple[int, int, int]:
        m = off + 16  # LMDB 0.9 page header
        return (
            struct.unpack_from("<Q", raw, m + 128)[0],
            struct.unpack_from("<I", raw, m + 24)[0],
            struct.unpack_from("<Q", raw, m + 72 + 40)[0],
        )

    first = meta(0)
    _, psize, main_root = max(first, meta(first[1]))
    page = raw[main_root * psize : (main_root + 1) * psize]
    at = page.index(b"sequences") + len(b"sequences")
    return psize, struct.unpack_from("<Q", page, at + 40)[0]


def test_a_damaged_btree_page_is_one_line(store, corpus, word_tokenizer_dir) -> None:
    psize, page = _sequences_root_page(store / "data.mdb")
    with open(store / "data.mdb", "r+b") as f:  # clear the page's type flags
        f.seek(page * psize + 10)
        f.write(b"\x00\x00")
    more = corpus.with_name("more.jsonl")  # new records: `index` must write into the damaged tree
    more.write_text("".join(json.dumps({"text": f"SELECT name FROM singer WHERE age > {i}"}) + "\n" for i in range(50)))
    cmds = _commands(store, more, word_tokenizer_dir)
    for name in ("verify", "repair", "index"):
        line = one_error(cli(*cmds[name]), "damaged")
        assert "backup" in line, (name, line)
