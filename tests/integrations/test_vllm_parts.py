"""The vLLM adapter's parts that need no vLLM: its config, the finish rule, per-request
drafting over the drafting service and how stores are opened. These run in either venv."""

from __future__ import annotations

import json

import pytest

from sufdec.drafters.service import DraftService
from sufdec.drafters.settings import DraftSettings
from sufdec.integrations.vllm.config import ConfigError, IntegrationConfig
from sufdec.integrations.vllm.drafting import LiveRequests
from sufdec.integrations.vllm.learning import ended_output
from sufdec.integrations.vllm.opening import IncompatibleVllmError, check_vllm_version
from sufdec.suffix import SuffixIndex

EOS = 2


# ---------------------------------------------------------------- config
def test_config_defaults_follow_sufdec_store(tmp_path):
    cfg = IntegrationConfig.from_environ({"SUFDEC_STORE": str(tmp_path / "s")})
    assert cfg.store == tmp_path / "s"
    assert cfg.learn and cfg.draft.spec == "chain" and cfg.draft.sizing == "cost"
    assert cfg.draft.mode == "merged" and cfg.token_cost == "auto"


def test_config_file_overrides(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(
        json.dumps(
            {
                "store": str(tmp_path / "x"),
                "learn": False,
                "preset": "paper",
                "draft": {"max_spec_tokens": 8, "sizing": "fixed"},
                "refresh_s": 0,
            }
        )
    )
    cfg = IntegrationConfig.from_environ({"SUFDEC_STORE": "/elsewhere", "SUFDEC_VLLM_CONFIG": str(path)})
    assert cfg.store == tmp_path / "x" and not cfg.learn and cfg.refresh_s == 0
    assert cfg.draft == DraftSettings.preset("paper", spec="chain", sizing="fixed", max_spec_tokens=8)
    assert IntegrationConfig.from_dict({"token_cost": 0}, {}).token_cost == 0
    assert IntegrationConfig.from_dict({"token_cost": "auto"}, {}).token_cost == "auto"


@pytest.mark.parametrize(
    "raw, words",
    [
        ({"stroe": "x"}, "unknown key"),
        ({"draft": {"max_spec_token": 3}}, "unknown draft field"),
        ({"draft": {"spec": "tree"}}, "chains only"),
        ({"draft": {"spec": "hybrid"}}, "chains only"),
        ({"draft": {"spec": "nonesuch"}}, "chains only.*chain"),
        ({"draft": {"sizing": "beta-ts"}}, "sizing must be one of cost, fixed, not 'beta-ts'"),
        ({"draft": {"sizing": "calibration-ts"}}, "sizing must be one of cost, fixed"),
        ({"token_cost": 2}, "between 0 and 1"),
        ({"token_cost": "cheap"}, '"auto" or a number'),
        ({"token_cost": True}, '"auto" or a number'),
        ({"preset": "nope"}, "unknown preset"),
    ],
)
def test_config_errors_say_what(raw, words):
    with pytest.raises(ConfigError, match=words):
        IntegrationConfig.from_dict(raw, {})


def test_config_file_unreadable(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        IntegrationConfig.from_environ({"SUFDEC_VLLM_CONFIG": str(tmp_path / "missing.json")})
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ConfigError, match="not JSON"):
        IntegrationConfig.from_environ({"SUFDEC_VLLM_CONFIG": str(tmp_path / "bad.json")})


# ---------------------------------------------------------------- which outputs are learned
def _ended(out, eos=EOS, stops=(), max_tokens=100, prompt=10, max_len=1000):
    return ended_output(
        out,
        eos_token_id=eos,
        stop_token_ids=stops,
        max_tokens=max_tokens,
        num_prompt_tokens=prompt,
        max_model_len=max_len,
    )


def test_ended_output_mirrors_vllm_check_stop():
    assert _ended([5, 6, EOS]) == [5, 6, EOS]  # EOS, kept
    assert _ended([5, EOS, 7, 8]) == [5, EOS]  # accepted past EOS: cut there
    assert _ended([5, 9, 7], stops=[9]) == [5, 9]  # a stop token id
    assert _ended([5, 6, 7, 8], max_tokens=3) == [5, 6, 7]  # max_tokens
    assert _ended([5, 6, 7], prompt=8, max_len=10) == [5, 6]  # the context is full
    assert _ended([5, 6, 7]) is None  # aborted (client, stop string)
    assert _ended([5, EOS, 7], eos=None) is None  # ignore_eos: EOS is a token
    assert _ended([5, -1]) is None  # placeholders: not ours to judge
    assert _ended([]) is None


# ---------------------------------------------------------------- drafting per request
def _index(*seqs):
    index = SuffixIndex()
    for i, s in enumerate(seqs):
        index.add(i, s)
    return index


def _live(index, spec="chain", sizing="fixed", **kw):
    tree = (lambda: index) if index is not None else None
    return LiveRequests(DraftService(DraftSettings(spec=spec, sizing=sizing), tree=tree, **kw))


def test_live_requests_draft_chains_from_the_store_and_forget():
    live = _live(_index([1, 2, 3, 4, 5, 6, EOS, 9, 9]))
    assert live.draft("a", [7, 1, 2], limit=10, final={EOS}) == [3, 4, 5, 6, EOS]  # cut after EOS
    assert live.draft("a", [7, 1, 2, 3, 4], limit=2) == [5, 6]  # fed the new tail only
    assert live.draft("a", [7, 1, 2, 3, 4], limit=0) == []
    assert "a" in live and len(live) == 1
    live.finish("a", None)
    assert len(live) == 0
    live.finish("a", None)  # twice is fine


def test_live_requests_draft_from_the_request_itself():
    live = _live(None)  # no store at all
    assert live.draft("r", [5, 6, 7, 8, 5, 6], limit=4) == [7, 8, 5, 6]


def test_live_requests_follow_a_reloaded_tree():
    trees = [_index([1, 2, 3])]
    live = LiveRequests(DraftService(DraftSettings(spec="chain", sizing="fixed"), tree=lambda: trees[-1]))
    assert live.draft("a", [1], limit=5) == [2, 3]
    live.service.follow_tree()
    trees.append(_index([1, 4, 4]))  # the store reloaded its tree
    assert live.draft("a", [1], limit=5) == [2, 3]
    live.service.follow_tree()
    assert live.draft("a", [1], limit=5) == [4, 4]


def test_live_requests_take_numpy_rows():
    np = pytest.importorskip("numpy")
    live = _live(_index([1, 2, 3]))
    row = np.array([[0, 1, 0, 0]], dtype=np.int32)
    assert live.draft("a", row[0, :2], limit=5) == [2, 3]


def test_live_requests_report_each_step_once_and_learn_through_the_service():
    """The row's new tokens are the last step's outcome: one feedback call with the accepted
    count; a finished request is learned once (an aborted one not), by the service."""
    learned, outcomes = [], []
    live = _live(_index([1, 2, 3, 4, 5, 6]), learn=lambda ids: learned.append(ids) or len(learned))
    assert live.draft("a", [9, 1, 2], limit=3) == [3, 4, 5]
    request = live._live["a"].request
    request.feedback = outcomes.append  # what the service's request is told, step by step
    live.draft("a", [9, 1, 2, 3, 4, 7], limit=3)  # 3 and 4 accepted, 7 the bonus
    live.draft("a", [9, 1, 2, 3, 4, 7, 8], limit=3)
    assert [(o.accepted, o.emitted) for o in outcomes] == [(2, [3, 4, 7]), (0, [8])]
    assert outcomes[0].verified.token_ids == [3, 4, 5]
    live.finish("a", [3, 4, 7, 8])
    live.draft("b", [9, 1], limit=3)
    live.finish("b", None)  # aborted: not learned
    live.finish("c", [5, 5])  # never drafted for: learned all the same
    assert learned == [[3, 4, 7, 8], [5, 5]]


def test_live_requests_teach_the_calibration_what_followed():
    live = _live(_index([1, 2, 3, 4, 5, 6, 7, 8]), sizing="cost", price=0.3)
    ctx = [0, 1]
    for _ in range(3):
        live.draft("a", ctx, limit=10)
        ctx = ctx + [ctx[-1] + 1]
    live.finish("a", None)
    assert sum(map(sum, live.service.controls.calibrations["suffix"].seen)) > 0


def test_a_registered_chain_kind_drafts_through_the_adapter():
    """A drafter added with one file and one registry entry runs through the vLLM
    adapter's code path (the config accepts it: it drafts chains)."""
    from sufdec.drafters import registry
    from tests.drafters import toy_drafter

    registry.register(toy_drafter.KIND)
    try:
        cfg = IntegrationConfig.from_dict({"draft": {"spec": "repeat"}}, {"SUFDEC_STORE": "/nonexistent"})
        live = LiveRequests(DraftService(cfg.draft, price=0.0))
        assert live.draft("r", [5, 6, 7, 8, 5], limit=3) == [6, 7, 8]
        assert live._live["r"].request.kind.name == "repeat"
    finally:
        registry.unregister("repeat")


# ---------------------------------------------------------------- opening
def test_vllm_versions():
    check_vllm_version("0.32.0")
    check_vllm_version("0.32.1rc1+cpu")
    check_vllm_version("0.33.0")  # newer: a warning, not an error
    with pytest.raises(IncompatibleVllmError, match="needs vLLM >= 0.32"):
        check_vllm_version("0.11.2")


# ---------------------------------------------------------------- the worker
def test_worker_reads_the_step_shape_from_the_scheduler_output():
    from types import SimpleNamespace

    from sufdec.integrations.vllm.worker import _step_shape

    decode = SimpleNamespace(
        num_scheduled_tokens={"a": 4, "b": 1}, scheduled_spec_decode_tokens={"a": [1, 2, 3]}, scheduled_new_reqs=[]
    )
    assert _step_shape(decode) == (2, 3, True)
    chunked = SimpleNamespace(
        num_scheduled_tokens={"a": 4, "b": 64}, scheduled_spec_decode_tokens={"a": [1, 2, 3]}, scheduled_new_reqs=[]
    )
    assert _step_shape(chunked) == (2, 3, False)  # b computes prompt tokens
    new = SimpleNamespace(num_scheduled_tokens={"c": 1}, scheduled_spec_decode_tokens={}, scheduled_new_reqs=["c"])
    assert _step_shape(new) == (1, 0, False)
