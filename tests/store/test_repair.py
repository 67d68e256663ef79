"""`verify --repair` on damaged records (issue 12, item 3): records that fail their content
hash, cannot be decoded or hold token ids no tree can take are dropped and reported, and
the repaired store always verifies; `verify` itself reports such records, never raises."""

from __future__ import annotations

import json
from pathlib import Path

import lmdb
from typer.testing import CliRunner

from sufdec.cli.app import app
from sufdec.store import Store, codec
from sufdec.store.verify import repair_store, verify

from .helpers import TOK


def _make(path: Path, n: int = 20) -> None:
    with Store.open(path, TOK) as st:
        for i in range(n):
            st.append([10 + i, 20, 30 + i % 7, 40, 50 + i])
        st.checkpoint()


def _tamper(path: Path, seq_id: int, how: str) -> None:
    env = lmdb.open(str(path), max_dbs=8)
    db = env.open_db(b"sequences")
    key = codec.u64_key(seq_id)
    with env.begin(write=True) as txn:
        tok, digest, source = codec.decode_sequence(txn.get(key, db=db))
        if how == "flip":  # 16 bytes of the token array inverted: hash fails, ids go negative
            tok = bytes(b ^ 0xFF for b in tok[:16]) + tok[16:]
            txn.put(key, codec.encode_sequence(tok, digest, source), db=db)
        elif how == "negative":  # negative ids under a matching hash (a hand-made record)
            tok = codec.token_bytes(codec.to_token_array([1, 2])) + b"\xff\xff\xff\xff"
            txn.put(key, codec.encode_sequence(tok, codec.content_hash(tok), source), db=db)
        elif how == "garbage":
            txn.put(key, b"\xc1 not msgpack", db=db)
    env.close()


def test_verify_reports_and_repair_drops_bad_records(tmp_path: Path) -> None:
    _make(tmp_path)
    _tamper(tmp_path, 3, "flip")
    _tamper(tmp_path, 5, "negative")
    _tamper(tmp_path, 7, "garbage")
    with Store.open(tmp_path, TOK) as st:
        problems = verify(st)
        text = "\n".join(problems)
        assert "sequence 3" in text and "sequence 5" in text and "sequence 7" in text, problems
        summary = repair_store(st)
        assert sorted(seq_id for seq_id, _ in summary.dropped) == [3, 5, 7]
        reasons = dict(summary.dropped)
        assert "content hash" in reasons[3] and "negative" in reasons[5] and "decoded" in reasons[7]
        assert verify(st) == [] and len(st) == 17 and len(st.tree) == 17
    with Store.open(tmp_path, TOK) as st:  # and it stays sound after a reopen
        assert verify(st) == [] and len(st.tree) == 17


def test_verify_does_not_raise_on_a_record_the_tree_cannot_take(tmp_path: Path) -> None:
    _make(tmp_path)
    _tamper(tmp_path, 5, "negative")
    with Store.open(tmp_path, TOK) as st:
        assert any("sequence 5" in p and "negative" in p for p in verify(st))


def test_cli_repair_reports_what_it_dropped(tmp_path: Path) -> None:
    store = tmp_path / "s"
    _make(store)
    _tamper(store, 3, "flip")
    runner = CliRunner()
    res = runner.invoke(app, ["verify", "--store", str(store), "--repair", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["repaired"] and out["remaining"] == [] and [d["seq_id"] for d in out["dropped"]] == [3]
    res = runner.invoke(app, ["verify", "--store", str(store)])
    assert res.exit_code == 0 and "ok:" in res.output


def test_a_malformed_sequence_key_is_reported_and_repaired(tmp_path: Path) -> None:
    """Issue 20 item 5: a `sequences` key that is not 8 bytes made verify and repair raise
    `struct.error`; verify reports it and repair drops it, and the store then verifies."""
    path = tmp_path / "s"
    _make(path)
    env = lmdb.open(str(path), max_dbs=8)
    db = env.open_db(b"sequences")
    with env.begin(write=True) as txn:
        txn.put(b"abc", b"whatever", db=db)
    env.close()
    with Store.open(path, TOK) as st:
        problems = verify(st)
        assert any("a sequence key of 3 bytes (0x616263) is not a sequence id" in p for p in problems), problems
        summary = repair_store(st)
        assert [why for _, why in summary.dropped] == ["its key of 3 bytes (0x616263) is not a sequence id"]
        assert verify(st) == [] and len(st) == 20
    res = CliRunner().invoke(app, ["verify", "--store", str(path)])
    assert res.exit_code == 0, res.output
