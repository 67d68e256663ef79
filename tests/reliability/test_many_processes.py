"""Many processes, one store: readers drafting while `sufdec index` writes, and two
writers at once. Readers see only whole records, pick up new outputs with refresh()
(never restarting), and the writers serialise (LMDB's writer lock) without corrupting."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from sufdec.store import Store, TokenizerInfo
from sufdec.tokenization import load_tokenizer

from .helpers import REPO, check_store, expected_tokens, make_corpus, sufdec

READER = Path(__file__).with_name("reader_child.py")


def _create(store: Path, tok_dir: Path) -> None:
    tok = load_tokenizer(tok_dir)
    Store.open(store, TokenizerInfo(tok.name, tok.fingerprint)).close()


def _readers(store: Path, n: int, target: int) -> list[subprocess.Popen]:
    procs = [
        subprocess.Popen(
            [sys.executable, str(READER), str(store), str(target), "60"],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(n)
    ]
    for p in procs:
        assert p.stdout.readline().strip() == "ready", p.stderr.read()
    return procs


def _results(procs: list[subprocess.Popen]) -> list[dict]:
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=120)
        assert p.returncode == 0, stderr
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return out


def test_four_readers_drafting_while_index_writes(tmp_path: Path, word_tokenizer_dir: Path) -> None:
    data = tmp_path / "data.jsonl"
    expected = expected_tokens(word_tokenizer_dir, make_corpus(data, 1500, seed=5))
    store = tmp_path / "store"
    _create(store, word_tokenizer_dir)
    readers = _readers(store, 4, len(expected))
    writer = sufdec(
        "index",
        str(data),
        "--store",
        str(store),
        "--tokenizer",
        str(word_tokenizer_dir),
        "--txn-records",
        "50",
        "--json",
    )
    _, err = writer.communicate(timeout=120)
    assert writer.returncode == 0, err
    for r in _results(readers):
        assert r["problems"] == [], r
        assert r["counts"][-1] == len(expected) and r["seen"] == len(expected)
        assert len(r["counts"]) > 2  # it saw the store grow, through refresh(), without restarting
        assert r["drafts"] > 0 and r["nonempty"] > 0
    assert check_store(store) == expected


def test_two_writers_at_once(tmp_path: Path, word_tokenizer_dir: Path) -> None:
    """Two `sufdec index` on overlapping inputs plus a reader: both succeed (the second
    waits for LMDB's writer lock between transactions), and the union is stored exactly once."""
    texts = make_corpus(tmp_path / "all.jsonl", 1600, seed=6)
    lines = (tmp_path / "all.jsonl").read_text().splitlines(keepends=True)
    (tmp_path / "a.jsonl").write_text("".join(lines[:1000]))
    (tmp_path / "b.jsonl").write_text("".join(lines[600:]))
    union = expected_tokens(word_tokenizer_dir, texts)
    store = tmp_path / "store"
    _create(store, word_tokenizer_dir)
    readers = _readers(store, 1, len(union))
    writers = [
        sufdec(
            "index",
            str(tmp_path / f"{x}.jsonl"),
            "--store",
            str(store),
            "--tokenizer",
            str(word_tokenizer_dir),
            "--txn-records",
            "50",
            "--json",
        )
        for x in "ab"
    ]
    reports = []
    for w in writers:
        out, err = w.communicate(timeout=120)
        assert w.returncode == 0, err
        reports.append(json.loads(out.strip().splitlines()[-1]))
    assert sum(r["records_added"] for r in reports) == len(union)
    assert sum(r["duplicates"] for r in reports) == 400  # the overlap, counted once by whoever came second
    stored = check_store(store)
    assert sorted(map(tuple, stored)) == sorted(map(tuple, union))
    assert _results(readers)[0]["problems"] == []
    with Store.open(store, readonly=True) as st:
        files = [Path(s.source["file"]).name for s in st.iter_sequences()]
    switches = sum(a != b for a, b in zip(files, files[1:]))
    print(f"\ntwo writers: {switches} switches between their transactions")
