"""sufdec inside vLLM's CPU build, end to end on the default model (CPU, float32, greedy,
eager): outputs identical to plain vLLM, finished outputs learned into the store exactly
once, and a second vLLM process drafting from them. The first sufdec process shares its
store through a real PostgreSQL ($SUFDEC_SHARE): a new host catches up with what it learned.

Runs only where vLLM is installed (``make test-vllm`` uses .vllm-venv); ~4 min on 2 cores
(three vLLM starts of ~30 s each, 12 prompts per run).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("vllm", reason="vLLM is not installed here (make vllm-setup; make test-vllm)")

from sufdec.integrations.vllm.learning import ended_output  # noqa: E402
from sufdec.store import Store  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.model]

ROOT = Path(__file__).resolve().parents[2]
CHILD = Path(__file__).with_name("vllm_child.py")
PROMPTS = ROOT / "data" / "spider_demo" / "prompts.jsonl"
N_PROMPTS, MAX_TOKENS, K = 12, 128, 16


def _model_dir() -> Path:
    from sufdec.models import default_cache_root
    from sufdec.session import default_model

    return default_model(default_cache_root(os.environ))


def _run(mode: str, store: Path, model: Path, out: Path, share: str | None = None) -> dict:
    env = dict(os.environ, SUFDEC_STORE=str(store), VLLM_CPU_KVCACHE_SPACE="1", TOKENIZERS_PARALLELISM="false")
    env.pop("SUFDEC_VLLM_CONFIG", None)
    env.pop("SUFDEC_SHARE", None)
    if share is not None:
        env["SUFDEC_SHARE"] = share
    proc = subprocess.run(
        [sys.executable, str(CHILD), str(model), str(PROMPTS), str(N_PROMPTS), str(MAX_TOKENS), mode, str(K), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"vLLM run ({mode}) failed:\n{log[-6000:]}"
    result = json.loads(out.read_text())
    result["log"] = log
    return result


def _stored(store: Path) -> list:
    with Store.open(store, readonly=True) as s:
        return list(s.iter_sequences())


def _tokens_per_step(run: dict) -> float:
    """Generated tokens over decode steps (each step yields one token plus those accepted)."""
    accepted = run["metrics"].get("num_accepted_tokens", 0)
    return run["tokens"] / (run["tokens"] - accepted)


@pytest.fixture(scope="module")
def postgres():
    from tests.share.postgres import PostgresServer

    server = PostgresServer().start()
    yield server
    server.close()


@pytest.fixture(scope="module")
def runs(tmp_path_factory, postgres):
    model = _model_dir()
    work = tmp_path_factory.mktemp("vllm")
    store = work / "store"
    share = postgres.create_database("vllm_e2e")
    plain = _run("plain", store, model, work / "plain.json")
    assert not store.exists(), "plain vLLM must not touch the store"
    cold = _run("sufdec", store, model, work / "cold.json", share=share)
    after_cold = _stored(store)
    warm = _run("sufdec", store, model, work / "warm.json")
    after_warm = _stored(store)
    for name, run in (("plain", plain), ("sufdec, empty store", cold), ("sufdec, second process", warm)):
        print(
            f"\n[vllm e2e] {name}: {run['tokens']} tokens in {run['generate_s']:.1f} s "
            f"({run['tokens_per_s']:.1f} tokens/s), start {run['start_s']:.0f} s, metrics {run['metrics']}"
            + (f", {_tokens_per_step(run):.2f} tokens/step" if run["metrics"] else "")
        )
    return {
        "plain": plain,
        "cold": cold,
        "warm": warm,
        "after_cold": after_cold,
        "after_warm": after_warm,
        "share": share,
        "store": store,
    }


def test_outputs_identical_to_plain_vllm(runs):
    plain = runs["plain"]["outputs"]
    assert len(plain) == N_PROMPTS
    assert runs["cold"]["outputs"] == plain
    assert runs["warm"]["outputs"] == plain


def test_finished_outputs_are_learned_exactly_once(runs):
    stored = runs["after_cold"]
    # what the user received, EOS included, as vLLM's scheduler ended each request
    expected = {tuple(o) for o in runs["plain"]["outputs"]}
    assert all(f in ("stop", "length") for f in runs["plain"]["finish"])
    assert sorted(tuple(s.tokens) for s in stored) == sorted(expected)
    assert all(s.source.get("from") == "vllm" and s.source.get("model") for s in stored)
    # the second process saw the same outputs finish again: still one copy each
    assert [s.seq_id for s in runs["after_warm"]] == [s.seq_id for s in stored]


def test_a_new_host_catches_up_with_what_vllm_published(runs, tmp_path):
    from sufdec.share import Replica, SharedTable

    with Store.open(runs["store"], readonly=True) as engine_store:
        identity, engine_host = engine_store.meta().tokenizer, engine_store.share_state()["host"]
    table = SharedTable(runs["share"])
    try:  # vLLM published every output it learned, under its host id, before it exited
        assert table.summary(identity.fingerprint).hosts == {engine_host: N_PROMPTS}
    finally:
        table.close()
    with Store.open(tmp_path / "new-host", identity) as new_host:
        assert Replica(new_host, runs["share"]).sync().pulled == N_PROMPTS
        got = sorted(tuple(s.tokens) for s in new_host.iter_sequences())
        assert {s.source["host"] for s in new_host.iter_sequences()} == {engine_host}
    assert got == sorted(tuple(s.tokens) for s in runs["after_cold"])


def test_a_second_process_drafts_from_what_the_first_learned(runs):
    cold, warm = runs["cold"], runs["warm"]
    assert "drafting from" in warm["log"] and f"({N_PROMPTS} outputs)" in warm["log"]
    assert _tokens_per_step(warm) >= 3.0, warm["metrics"]
    assert _tokens_per_step(warm) > _tokens_per_step(cold)


def test_ended_output_agrees_with_vllm_on_what_users_received(runs):
    # every plain output ended by itself (EOS or max_tokens): the rule learns all of them
    for out in runs["plain"]["outputs"]:
        assert (
            ended_output(
                out, eos_token_id=2, stop_token_ids=(), max_tokens=MAX_TOKENS, num_prompt_tokens=1, max_model_len=2048
            )
            == out
        )
