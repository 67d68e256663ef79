"""Shared by the reliability tests: a corpus, the `sufdec` command as a subprocess, and
the checks every surviving store must pass."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from sufdec.store import NotAStoreError, Store, StoreNotFoundError, codec

from ..conftest import SQL_WORDS

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()


def make_corpus(path: Path, n: int, seed: int) -> list[str]:
    """``n`` distinct texts (three words spell the index) of 8-80 words, as JSONL."""
    rng, w = random.Random(seed), SQL_WORDS
    texts = [
        f"{w[i % 40]} {w[i // 40 % 40]} {w[i // 1600 % 40]} " + " ".join(rng.choices(w, k=rng.randint(5, 77)))
        for i in range(n)
    ]
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    return texts


def expected_tokens(tok_dir: Path, texts: list[str]) -> list[list[int]]:
    """What `sufdec index` stores for ``texts``, in order, duplicates dropped."""
    from sufdec.tokenization import load_tokenizer

    seen: set[tuple[int, ...]] = set()
    out = []
    for ids in load_tokenizer(tok_dir).encode_batch(texts):
        if tuple(ids) not in seen:
            seen.add(tuple(ids))
            out.append(ids)
    return out


def sufdec(*args: str, **kw) -> subprocess.Popen:
    """`python -m sufdec ARGS` in the repository, stdout piped."""
    return subprocess.Popen(
        [sys.executable, "-m", "sufdec", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def committed(store: Path) -> int:
    """How many sequences a reader sees committed right now (0 before the store exists)."""
    try:
        with Store.open(store, readonly=True, create=False) as st:
            return len(st)
    except (StoreNotFoundError, NotAStoreError):
        return 0


def check_store(store: Path) -> list[list[int]]:
    """`sufdec verify` passes and no sequence is stored twice; returns the stored token lists."""
    res = runner.invoke(__import__("sufdec.cli.app", fromlist=["app"]).app, ["verify", "--store", str(store), "--json"])
    assert res.exit_code == 0, res.output
    with Store.open(store, readonly=True, create=False) as st:
        seqs = list(st.iter_sequences())
    hashes = [s.content_hash for s in seqs]
    assert len(set(hashes)) == len(hashes)
    for s in seqs:  # whole records only (verify checks this too; cheap to say it here)
        assert codec.content_hash(codec.token_bytes(codec.to_token_array(s.tokens))) == s.content_hash
    return [s.tokens for s in seqs]
