"""A foreign LMDB directory is refused by every command and left byte for byte as it was
(issue 12, item 8: `index`, `verify --repair` and `compact` used to write sufdec's
databases into it)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import lmdb
import pytest
from typer.testing import CliRunner

from sufdec.cli.app import app
from sufdec.store import NotAStoreError, Store, compact_store

from .helpers import TOK


def _foreign(path: Path, kind: str) -> None:
    env = lmdb.open(str(path), max_dbs=8)
    with env.begin(write=True) as txn:
        if kind == "named-db":
            txn.put(b"k", b"v", db=env.open_db(b"users", txn=txn))
        elif kind == "main-db-keys":
            txn.put(b"some-key", b"some value")
        elif kind == "meta-db-of-another-app":  # a database named like ours, someone else's data
            txn.put(b"version", b"\x01", db=env.open_db(b"meta", txn=txn))
    env.close()


def _digest(path: Path) -> str:
    return hashlib.sha256((path / "data.mdb").read_bytes()).hexdigest()


@pytest.mark.parametrize("kind", ["named-db", "main-db-keys", "meta-db-of-another-app"])
def test_foreign_environment_refused_everywhere(tmp_path: Path, word_tokenizer_dir: Path, kind: str) -> None:
    store = tmp_path / "foreign"
    _foreign(store, kind)
    before = _digest(store)
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"text": "SELECT name FROM singer"}) + "\n")
    runner = CliRunner()
    s = ["--store", str(store)]
    for args in (
        ["index", str(src), *s, "--tokenizer", str(word_tokenizer_dir)],
        ["verify", "--repair", *s],
        ["compact", *s],
        ["stats", *s],
        ["verify", *s],
        ["evict", *s, "--max-tokens", "1"],
    ):
        res = runner.invoke(app, args)
        errors = [x for x in res.output.splitlines() if x.startswith("error:")]
        assert res.exit_code == 1 and len(errors) == 1 and "not a sufdec store" in errors[0], (args, res.output)
        assert _digest(store) == before, args
    for readonly in (False, True):
        with pytest.raises(NotAStoreError):
            Store.open(store, TOK, readonly=readonly, create=False)
    with pytest.raises(NotAStoreError):
        compact_store(store)
    assert _digest(store) == before
