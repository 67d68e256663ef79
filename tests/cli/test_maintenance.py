"""verify, evict, compact and the budget flags through typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import lmdb
from typer.testing import CliRunner

from sufdec.cli.app import app
from sufdec.store import Store, codec

runner = CliRunner()
WORDS = "SELECT name FROM singer WHERE age > 30 AND country = 'France' ORDER BY DESC LIMIT 1".split()


def _jsonl(path: Path, n: int) -> Path:
    rows = [
        " ".join(WORDS[(i + j) % len(WORDS)] for j in range(5 + i % 7)) + f" {WORDS[i % 3]}" * (i % 5) for i in range(n)
    ]
    rows = list(dict.fromkeys(rows))
    path.write_text("".join(json.dumps({"text": r}) + "\n" for r in rows))
    return path


def _run(*args: str) -> tuple[int, dict | None, str]:
    res = runner.invoke(app, list(args))
    line = next((x for x in res.stdout.splitlines() if x.startswith("{")), None)
    return res.exit_code, (json.loads(line) if line else None), res.output


def test_verify_ok_then_detects_a_tampered_record_and_repairs(tmp_path, word_tokenizer_dir):
    store = tmp_path / "s"
    src = _jsonl(tmp_path / "in.jsonl", 60)
    assert _run("index", str(src), "--store", str(store), "--tokenizer", str(word_tokenizer_dir))[0] == 0
    code, out, _ = _run("verify", "--store", str(store), "--json")
    assert code == 0 and out["ok"] and out["tree_nodes"] == out["rebuilt_nodes"] > 0
    code, _, text = _run("verify", "--store", str(store))
    assert code == 0 and "ok:" in text
    env = lmdb.open(str(store), max_dbs=8)  # flip a token of sequence 3 behind the store's back
    db = env.open_db(b"sequences")
    with env.begin(write=True) as txn:
        tok, digest, source = codec.decode_sequence(txn.get(codec.u64_key(3), db=db))
        txn.put(codec.u64_key(3), codec.encode_sequence(tok[:-4] + b"\x01\x00\x00\x00", digest, source), db=db)
    env.close()
    code, out, _ = _run("verify", "--store", str(store), "--json")
    assert code == 1 and any("content hash" in p for p in out["problems"])
    code, out, _ = _run("verify", "--store", str(store), "--repair", "--json")
    assert code == 0 and out["repaired"] and out["remaining"] == []
    assert _run("verify", "--store", str(store))[0] == 0


def test_verify_missing_store_fails_clearly(tmp_path):
    code, _, text = _run("verify", "--store", str(tmp_path / "nothing"))
    assert code == 1 and "no store" in text and len(text.strip().splitlines()) == 1


def test_budget_flags_are_recorded_and_evict_and_compact(tmp_path, word_tokenizer_dir):
    store = tmp_path / "s"
    src = _jsonl(tmp_path / "in.jsonl", 300)
    code, out, _ = _run(
        "index",
        str(src),
        "--store",
        str(store),
        "--tokenizer",
        str(word_tokenizer_dir),
        "--max-tokens",
        "500",
        "--json",
    )
    assert code == 0 and out["store_tokens"] <= 500 and out["records_added"] > out["store_sequences"]
    with Store.open(store) as st:
        assert st.budget.max_tokens == 500
        newest = [s.tokens for s in st.iter_sequences()][-1]
    with Store.open(store) as st:  # the newest record survived
        assert st.find(newest) is not None
    code, out, _ = _run("evict", "--store", str(store), "--max-tokens", "200", "--json")
    assert code == 0 and out["tokens"] <= 200 and out["evicted_sequences"] > 0 and not out["recorded"]
    code, out, _ = _run("evict", "--store", str(store), "--max-bytes", "4K", "--record", "--json")
    assert code == 0 and out["recorded"]
    with Store.open(store) as st:
        assert st.budget.max_bytes == 4096 and st.budget.max_tokens == 500
    code, out, text = _run("stats", "--store", str(store), "--json")
    assert code == 0 and out["budget"] == {"max_tokens": 500, "max_bytes": 4096, "eviction": "fifo"}
    code, _, text = _run("stats", "--store", str(store))
    assert code == 0 and "500 tokens" in text and "4.0 KiB of records" in text and "fifo eviction" in text
    code, out, _ = _run("compact", "--store", str(store), "--json")
    assert code == 0 and out["after_bytes"] < out["before_bytes"]
    assert _run("verify", "--store", str(store))[0] == 0
    code, _, text = _run("compact", "--store", str(store))
    assert code == 0 and "compacted" in text


def test_evict_and_budget_flags_refuse_nonsense(tmp_path, word_tokenizer_dir):
    store = tmp_path / "s"
    src = _jsonl(tmp_path / "in.jsonl", 5)
    assert _run("index", str(src), "--store", str(store), "--tokenizer", str(word_tokenizer_dir))[0] == 0
    code, _, text = _run("evict", "--store", str(store))
    assert code == 2 and "no budget" in text
    code, _, text = _run("evict", "--store", str(store), "--max-bytes", "lots")
    assert code == 2 and "not a size" in text
    code, _, text = _run(
        "index", str(src), "--store", str(store), "--tokenizer", str(word_tokenizer_dir), "--eviction", "random"
    )
    assert code == 2 and "--eviction" in text


def test_a_lowered_budget_holds_after_an_index_run_of_duplicates(tmp_path, word_tokenizer_dir):
    """Issue 12, item 12: re-indexing the same file with a lower budget evicts down to it
    (it used to leave the store at 133% of the budget: nothing new was added, so nothing was enforced)."""
    store = tmp_path / "s"
    src = _jsonl(tmp_path / "in.jsonl", 300)
    code, out, _ = _run("index", str(src), "--store", str(store), "--tokenizer", str(word_tokenizer_dir), "--json")
    assert code == 0 and out["records_added"] > 0
    total = out["store_tokens"]
    code, out, text = _run(
        "index",
        str(src),
        "--store",
        str(store),
        "--tokenizer",
        str(word_tokenizer_dir),
        "--max-tokens",
        str(total * 3 // 4),
        "--json",
    )
    assert code == 0 and out["records_added"] == 0, text
    assert out["store_tokens"] <= total * 3 // 4 and out["evicted"] > 0, out
