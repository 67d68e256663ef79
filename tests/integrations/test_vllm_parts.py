"""The vLLM adapter's parts that need no vLLM: its config, the finish rule, per-request
drafting, the learner thread and how stores are opened. These run in either venv."""

from __future__ import annotations

import json

import pytest

from sufdec.integrations.vllm.config import ConfigError, IntegrationConfig
from sufdec.integrations.vllm.drafting import LiveRequests
from sufdec.integrations.vllm.learning import Learner, ended_output
from sufdec.integrations.vllm.opening import IncompatibleVllmError, check_vllm_version, open_store
from sufdec.store import Store, StoreLockedError, TokenizerMismatchError
from sufdec.store.meta import TokenizerInfo
from sufdec.suffix import DraftSettings, SuffixIndex

TOK = TokenizerInfo("tok", "f" * 32)
EOS = 2


# ---------------------------------------------------------------- config
def test_config_defaults_follow_sufdec_store(tmp_path):
    cfg = IntegrationConfig.from_environ({"SUFDEC_STORE": str(tmp_path / "s")})
    assert cfg.store == tmp_path / "s"
    assert cfg.learn and cfg.draft.spec == "chain" and cfg.draft.sizing == "cost"
    assert cfg.draft.mode == "merged" and cfg.token_cost == "auto"


def test_config_file_overrides(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"store": str(tmp_path / "x"), "learn": False, "preset": "paper",
                                "draft": {"max_spec_tokens": 8, "sizing": "fixed"}, "refresh_s": 0}))
    cfg = IntegrationConfig.from_environ({"SUFDEC_STORE": "/elsewhere", "SUFDEC_VLLM_CONFIG": str(path)})
    assert cfg.store == tmp_path / "x" and not cfg.learn and cfg.refresh_s == 0
    assert cfg.draft == DraftSettings.preset("paper", spec="chain", sizing="fixed", max_spec_tokens=8)
    assert IntegrationConfig.from_dict({"token_cost": 0}, {}).token_cost == 0
    assert IntegrationConfig.from_dict({"token_cost": "auto"}, {}).token_cost == "auto"


@pytest.mark.parametrize("raw, words", [
    ({"stroe": "x"}, "unknown key"),
    ({"draft": {"max_spec_token": 3}}, "unknown draft field"),
    ({"draft": {"spec": "tree"}}, "chains only"),
    ({"token_cost": 2}, "between 0 and 1"),
    ({"token_cost": "cheap"}, '"auto" or a number'),
    ({"token_cost": True}, '"auto" or a number'),
    ({"preset": "nope"}, "unknown preset"),
])
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
    return ended_output(out, eos_token_id=eos, stop_token_ids=stops, max_tokens=max_tokens,
                        num_prompt_tokens=prompt, max_model_len=max_len)


def test_ended_output_mirrors_vllm_check_stop():
    assert _ended([5, 6, EOS]) == [5, 6, EOS]                 # EOS, kept
    assert _ended([5, EOS, 7, 8]) == [5, EOS]                 # accepted past EOS: cut there
    assert _ended([5, 9, 7], stops=[9]) == [5, 9]             # a stop token id
    assert _ended([5, 6, 7, 8], max_tokens=3) == [5, 6, 7]    # max_tokens
    assert _ended([5, 6, 7], prompt=8, max_len=10) == [5, 6]  # the context is full
    assert _ended([5, 6, 7]) is None                          # aborted (client, stop string)
    assert _ended([5, EOS, 7], eos=None) is None              # ignore_eos: EOS is a token
    assert _ended([5, -1]) is None                            # placeholders: not ours to judge
    assert _ended([]) is None


def test_learner_appends_in_order_and_survives_errors(tmp_path):
    got = []

    def append(tokens, source):
        if tokens == [0]:
            raise RuntimeError("disk on fire")
        got.append((tokens, source))
        return len(got) if tokens != [9] else None

    learner = Learner(append)
    for toks in ([1, 2], [0], [3], [9]):
        learner.submit(toks, {"from": "vllm"})
    assert learner.flush(10)
    learner.close()
    assert [t for t, _ in got] == [[1, 2], [3], [9]]
    assert learner.learned == 2 and learner.duplicates == 1


# ---------------------------------------------------------------- drafting per request
def _index(*seqs):
    index = SuffixIndex()
    for i, s in enumerate(seqs):
        index.add(i, s)
    return index


def test_live_requests_draft_chains_from_the_store_and_forget():
    index = _index([1, 2, 3, 4, 5, 6, EOS, 9, 9])
    live = LiveRequests(DraftSettings(spec="chain"), index)
    assert live.draft("a", [7, 1, 2], limit=10, final={EOS}) == [3, 4, 5, 6, EOS]  # cut after EOS
    assert live.draft("a", [7, 1, 2, 3, 4], limit=2) == [5, 6]                   # fed the new tail only
    assert live.draft("a", [7, 1, 2, 3, 4], limit=0) == []
    assert "a" in live and len(live) == 1
    live.drop("a")
    assert len(live) == 0
    live.drop("a")  # twice is fine


def test_live_requests_draft_from_the_request_itself():
    live = LiveRequests(DraftSettings(spec="chain"), None)  # no store at all
    assert live.draft("r", [5, 6, 7, 8, 5, 6], limit=4) == [7, 8, 5, 6]


def test_live_requests_follow_a_reloaded_tree():
    live = LiveRequests(DraftSettings(spec="chain"), _index([1, 2, 3]))
    assert live.draft("a", [1], limit=5) == [2, 3]
    live.use_tree(_index([1, 4, 4]))
    assert live.draft("a", [1], limit=5) == [4, 4]


def test_live_requests_take_numpy_rows():
    np = pytest.importorskip("numpy")
    live = LiveRequests(DraftSettings(spec="chain"), _index([1, 2, 3]))
    row = np.array([[0, 1, 0, 0]], dtype=np.int32)
    assert live.draft("a", row[0, :2], limit=5) == [2, 3]


# ---------------------------------------------------------------- opening
def test_vllm_versions():
    check_vllm_version("0.32.0")
    check_vllm_version("0.32.1rc1+cpu")
    check_vllm_version("0.33.0")  # newer: a warning, not an error
    with pytest.raises(IncompatibleVllmError, match="needs vLLM >= 0.32"):
        check_vllm_version("0.11.2")


def test_open_store_creates_a_missing_one(tmp_path, caplog):
    caplog.set_level("INFO", logger="vllm.sufdec")
    store = open_store(tmp_path / "s", TOK)
    assert store is not None and not store.readonly and len(store) == 0
    store.close()
    assert "created an empty one" in caplog.text


def test_open_store_refuses_another_tokenizer(tmp_path):
    Store.open(tmp_path / "s", TokenizerInfo("other", "0" * 32)).close()
    with pytest.raises(TokenizerMismatchError):
        open_store(tmp_path / "s", TOK)


def test_open_store_read_only_drafts_without_learning(tmp_path, caplog):
    Store.open(tmp_path / "s", TOK).close()

    def opener(path, tok, create=True, readonly=False):
        if not readonly:  # what a store in a read-only directory answers (root ignores chmod)
            raise StoreLockedError(f"cannot write to the store at {path}: permission denied")
        return Store.open(path, tok, create=create, readonly=True)

    store = open_store(tmp_path / "s", TOK, open_fn=opener)
    assert store is not None and store.readonly
    store.close()
    assert caplog.text.count("without learning") == 1


def test_open_store_unusable_drafts_from_requests_only(tmp_path, caplog):
    (tmp_path / "file").write_text("not a store")
    assert open_store(tmp_path / "file", TOK) is None
    assert "own tokens only" in caplog.text


# ---------------------------------------------------------------- sizing
def test_sizer_cuts_where_a_token_no_longer_pays():
    from sufdec.integrations.vllm.sizing import ChainSizer
    from sufdec.suffix.draft import Draft

    chain = Draft.chain([1, 2, 3, 4], [0.9, 0.6, 0.4, 0.2])
    assert ChainSizer(0.5).cut(chain, 10).token_ids == [1, 2]
    assert ChainSizer(0.5).cut(chain, 1).token_ids == [1]
    assert ChainSizer(0.0).cut(chain, 3).token_ids == [1, 2, 3]


def test_sizer_learns_that_exact_repeats_hold():
    from sufdec.integrations.vllm.sizing import ChainSizer
    from sufdec.suffix.draft import Draft

    # one stored occurrence: count ratios of 1/1.5 per token, 0.3 by the third token
    chain = Draft.chain([1, 2, 3, 4, 5, 6], [0.67 ** d for d in range(1, 7)])
    sizer = ChainSizer(0.3)
    assert len(sizer.cut(chain, 10)) == 3
    for _ in range(50):  # every time, all of it was generated
        sizer.record(chain, [1, 2, 3, 4, 5, 6])
    assert len(sizer.cut(chain, 10)) == 6


def test_live_requests_teach_the_sizer_what_followed():
    from sufdec.integrations.vllm.sizing import ChainSizer

    sizer = ChainSizer(0.3)
    live = LiveRequests(DraftSettings(spec="chain"), _index([1, 2, 3, 4, 5, 6, 7, 8]), sizer)
    ctx = [0, 1]
    for _ in range(3):
        live.draft("a", ctx, limit=10)
        ctx = ctx + [ctx[-1] + 1]
    live.drop("a")
    assert sum(map(sum, sizer.calibration.seen)) > 0


def _steps(cost, shapes, seconds, out_per_step, decode_only=True):
    """Feed ``cost`` steps of (requests, drafted) shapes taking ``seconds(r, d)`` each."""
    now = 0.0
    for r, d in shapes:
        cost.started(now, r, d, decode_only)
        now += seconds(r, d)
        cost.ended(now, out_per_step(r, d))
        now += 0.5  # idle time between steps does not count


def test_step_cost_prices_a_drafted_token_at_what_the_engine_gives_up():
    from sufdec.integrations.vllm.sizing import StepCost

    a, c, b = 0.04, 0.003, 0.002  # seconds per step, per request, per drafted token
    step = lambda r, d: a + c * r + b * d  # noqa: E731
    cost = StepCost(prior=0.35)
    assert cost.token_cost == 0.35  # nothing measured yet
    # one request: drafts of 0..5 tokens, 2 tokens out per step
    _steps(cost, [(1, k % 6) for k in range(40)], step, lambda r, d: 2)
    assert cost.fit() == pytest.approx((a + c, 0.0, b))  # one request count: a and c are one
    assert 2 * b / step(1, 5) < cost.token_cost < 2 * b / step(1, 0)
    # 32 to 8 requests: requests and drafts vary apart; the same token costs more output
    busy = StepCost(prior=0.35)
    shapes = [(32 - k % 25, 3 * (k % 7)) for k in range(60)]
    _steps(busy, shapes, step, lambda r, d: r + d // 2)
    assert busy.fit() == pytest.approx((a, c, b))
    assert busy.token_cost > 4 * cost.token_cost
    # steps with prompt tokens in them are not observed
    before = busy.steps
    _steps(busy, [(4, 0)] * 5, lambda r, d: 9.0, lambda r, d: 4, decode_only=False)
    assert busy.steps == before and busy.fit() == pytest.approx((a, c, b))
    assert len(busy.history) == busy.steps and busy.history[-1][:2] == shapes[-1]


def test_step_cost_waits_until_the_data_can_tell():
    from sufdec.integrations.vllm.sizing import StepCost

    cost = StepCost(prior=0.2)
    _steps(cost, [(4, 8)] * 40, lambda r, d: 0.1, lambda r, d: 8)  # always the same draft size
    assert cost.fit() is None and cost.token_cost == 0.2
    cost.ended(1e9, 5)  # an end without a start is ignored
    cost.reset()
    assert cost.steps == 0 and not cost.history
    # a GPU far from its compute bound: the step time does not grow with drafted tokens
    gpu = StepCost(prior=0.2)
    _steps(gpu, [(1 + k % 3, k % 9) for k in range(30)], lambda r, d: 0.02, lambda r, d: 3)
    assert gpu.token_cost == pytest.approx(0.0, abs=1e-9)


def test_worker_reads_the_step_shape_from_the_scheduler_output():
    from types import SimpleNamespace

    from sufdec.integrations.vllm.worker import _step_shape

    decode = SimpleNamespace(num_scheduled_tokens={"a": 4, "b": 1}, scheduled_spec_decode_tokens={"a": [1, 2, 3]},
                             scheduled_new_reqs=[])
    assert _step_shape(decode) == (2, 3, True)
    chunked = SimpleNamespace(num_scheduled_tokens={"a": 4, "b": 64}, scheduled_spec_decode_tokens={"a": [1, 2, 3]},
                              scheduled_new_reqs=[])
    assert _step_shape(chunked) == (2, 3, False)  # b computes prompt tokens
    new = SimpleNamespace(num_scheduled_tokens={"c": 1}, scheduled_spec_decode_tokens={}, scheduled_new_reqs=["c"])
    assert _step_shape(new) == (1, 0, False)
