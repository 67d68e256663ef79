"""SIGKILL the real `sufdec index` and `sufdec generate --learn` at random moments.

After every kill: the store opens, `sufdec verify` passes (records match their hashes,
the snapshot + log tree matches a rebuild), nothing is stored twice, the store holds a
prefix of the input in order (nothing half-written, nothing skipped), and everything a
reader saw committed just before the kill is still there. A last, unkilled run completes
the rest. (tests/store/test_crash.py kills a store-level child; these kill the CLI.)
"""

from __future__ import annotations

import json
import random
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .helpers import check_store, committed, expected_tokens, make_corpus, sufdec


@dataclass
class Tally:
    kills: int = 0  # kills that landed while the child was still running
    runs: int = 0
    progress: list[int] = field(default_factory=list)


def index_args(data: Path, store: Path, tok: Path) -> list[str]:
    return ["index", str(data), "--store", str(store), "--tokenizer", str(tok), "--txn-records", "40", "--json"]


def timed_full_run(data: Path, store: Path, tok: Path) -> float:
    t0 = time.perf_counter()
    proc = sufdec(*index_args(data, store, tok))
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return time.perf_counter() - t0


def kill_index_rounds(tmp_path: Path, tok: Path, *, n: int, kills: int, kills_per_round: int, seed: int) -> Tally:
    """Kill until ``kills`` kills landed on a running child; every ``kills_per_round``
    kills (or when a child finished before its kill) a last run completes the store and
    the next round starts on a fresh one."""
    rng = random.Random(seed)
    data = tmp_path / "data.jsonl"
    expected = expected_tokens(tok, make_corpus(data, n, seed))
    full = timed_full_run(data, tmp_path / "timing", tok)
    tally = Tally()
    rounds = 0
    while tally.kills < kills:
        assert tally.runs < 3 * kills, tally
        store = tmp_path / f"store{rounds}"
        for _ in range(kills_per_round):
            proc = sufdec(*index_args(data, store, tok))
            time.sleep(rng.uniform(0.0, 0.9 * full))
            seen = committed(store)  # acknowledged: a reader saw these committed
            alive = proc.poll() is None
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=60)
            tally.runs += 1
            if not alive:
                break
            tally.kills += 1
            if not (store / "data.mdb").exists():
                continue  # killed before the store was created
            stored = check_store(store)
            assert len(stored) >= seen
            assert stored == expected[: len(stored)]  # a prefix: in order, whole, nothing skipped
            tally.progress.append(len(stored))
        proc = sufdec(*index_args(data, store, tok))  # the re-run completes the rest
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        assert check_store(store) == expected
        rounds += 1
    return tally


def test_sigkill_index_short(tmp_path: Path, word_tokenizer_dir: Path) -> None:
    tally = kill_index_rounds(tmp_path, word_tokenizer_dir, n=1500, kills=10, kills_per_round=3, seed=11)
    print(f"\nindex: {tally.kills} kills in {tally.runs} runs")
    assert tally.kills >= 10, tally


@pytest.mark.slow
def test_sigkill_index_many(tmp_path: Path, word_tokenizer_dir: Path) -> None:
    tally = kill_index_rounds(tmp_path, word_tokenizer_dir, n=4000, kills=60, kills_per_round=6, seed=12)
    print(f"\nindex: {tally.kills} kills in {tally.runs} runs")
    assert tally.kills >= 50, tally


# ---------------------------------------------------------------- generate --learn
def kill_generate(tmp_path: Path, model: Path, *, kills: int, prompts: int, seed: int) -> Tally:
    """Each prompt's output is appended (one transaction) before its JSON line is printed:
    a line with "learned": true acknowledges a committed sequence."""
    from transformers import AutoTokenizer

    rng = random.Random(seed)
    words = "SELECT name FROM singer WHERE age count(*) concert stadium ORDER BY GROUP country".split()
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps({"prompt": " ".join(rng.choices(words, k=6))}) + "\n" for _ in range(prompts)))
    store = tmp_path / "store"
    tok = AutoTokenizer.from_pretrained(str(model))
    args = [
        "generate",
        "--model",
        str(model),
        "--store",
        str(store),
        "--prompts",
        str(path),
        "--raw",
        "--json",
        "--max-new-tokens",
        "12",
        "--sizing",
        "fixed",
    ]
    acked: set[str] = set()
    tally = Tally()
    while tally.kills < kills:
        proc = sufdec(*args)
        for _ in range(rng.randint(1, prompts // 2)):
            line = proc.stdout.readline()
            if not line:
                break
            row = json.loads(line)
            if row.get("learned"):
                acked.add(row["text"])
        time.sleep(rng.uniform(0.0, 0.2))
        alive = proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        tally.runs += 1
        if alive:
            tally.kills += 1
        if (store / "data.mdb").exists():
            stored = check_store(store)
            texts = {tok.decode(ids, skip_special_tokens=True) for ids in stored}
            assert acked <= texts
            tally.progress.append(len(stored))
    proc = sufdec(*args)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert len(check_store(store)) >= len(acked)
    return tally


def test_sigkill_generate_learn_short(tmp_path: Path, tiny_model_dir: Path) -> None:
    tally = kill_generate(tmp_path, tiny_model_dir, kills=1, prompts=8, seed=21)
    assert tally.kills >= 1


@pytest.mark.slow
def test_sigkill_generate_learn_many(tmp_path: Path, tiny_model_dir: Path) -> None:
    tally = kill_generate(tmp_path, tiny_model_dir, kills=12, prompts=60, seed=22)
    print(f"\ngenerate: {tally.kills} kills in {tally.runs} runs")
    assert tally.kills >= 12
