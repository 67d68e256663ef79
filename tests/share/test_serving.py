"""A serving engine's store (``open_serving``, what the vLLM adapter opens) shared with
another host: what the engine learns reaches the other store, and what the other host
publishes reaches the engine's drafting tree."""

from __future__ import annotations

import time

from sufdec.drafters.serving import open_serving
from sufdec.drafters.settings import DraftSettings
from sufdec.share import Replica
from sufdec.store import Store, TokenizerInfo

TOK = TokenizerInfo("toy", "fp-toy")


def _wait(predicate, timeout_s: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not predicate():
        time.sleep(0.05)
    return predicate()


def test_an_engine_publishes_and_follows(tmp_path, share_url) -> None:
    Store.open(tmp_path / "engine", TOK).close()  # an engine's store, with its tokenizer
    service = open_serving(tmp_path / "engine", TOK, DraftSettings(spec="chain"), share=share_url)
    other = Store.open(tmp_path / "other", TOK)
    replica = Replica(other, share_url)
    try:
        service.learn_output([4, 5, 6, 7])  # what the engine learned (in the background)
        assert _wait(lambda: replica.sync().pulled == 1 or len(other) == 1)
        other.append([9, 8, 7, 6])
        replica.sync()
        assert _wait(lambda: service.store.find([9, 8, 7, 6]) is not None)
    finally:
        service.close()
        other.close()


def test_the_vllm_config_takes_the_shared_database(tmp_path) -> None:
    import pytest

    from sufdec.integrations.vllm.config import ConfigError, IntegrationConfig

    env = {"SUFDEC_STORE": str(tmp_path / "s"), "SUFDEC_SHARE": "postgresql://u@db/corpus"}
    assert IntegrationConfig.from_dict({}, env).share == "postgresql://u@db/corpus"
    assert IntegrationConfig.from_dict({"share": "postgresql://u@other/x"}, env).share == "postgresql://u@other/x"
    assert IntegrationConfig.from_dict({}, {"SUFDEC_STORE": str(tmp_path / "s")}).share is None
    with pytest.raises(ConfigError, match="share must be a PostgreSQL URL"):
        IntegrationConfig.from_dict({"share": "redis://x"}, env)


def test_an_engine_starts_warm_and_never_waits_for_a_database_that_is_down(tmp_path, share_url) -> None:
    other = Store.open(tmp_path / "other", TOK)
    replica = Replica(other, share_url)
    for n in range(3):
        other.append([n, 5, 6, 7])
    assert replica.sync().pushed == 3
    Store.open(tmp_path / "engine", TOK).close()
    service = open_serving(tmp_path / "engine", TOK, DraftSettings(spec="chain"), share=share_url)
    try:  # caught up before open_serving returned: the first request drafts from all of it
        assert len(service.store) == 3 and service.store.find([2, 5, 6, 7]) is not None
    finally:
        service.close()
        other.close()
    t0 = time.monotonic()
    down = "postgresql://postgres@127.0.0.1:1/nothing"  # nothing listens there
    service = open_serving(tmp_path / "engine2", TOK, DraftSettings(spec="chain"), share=down)
    try:
        assert time.monotonic() - t0 < 10.0
        service.learn_output([1, 2, 3, 4])
        assert _wait(lambda: len(service.store) == 1)  # learning goes on; the output stays queued
    finally:
        service.close()
