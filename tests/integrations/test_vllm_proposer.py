"""The proposer and worker against vLLM's own classes, without starting an engine: rows
mapped to requests through the runner, budgets, learning on finish, clear refusals."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

pytest.importorskip("vllm", reason="vLLM is not installed here (make vllm-setup; make test-vllm)")

import numpy as np  # noqa: E402
from vllm import SamplingParams  # noqa: E402

from sufdec.integrations.vllm import IntegrationConfig, Proposer  # noqa: E402
from sufdec.integrations.vllm.proposer import MissingWorkerError  # noqa: E402
from sufdec.store import Store  # noqa: E402

EOS = 2
WORKER = "sufdec.integrations.vllm.Worker"


def _vllm_config(model_dir, worker_cls=WORKER, k=4, max_len=64):
    return SimpleNamespace(
        parallel_config=SimpleNamespace(worker_cls=worker_cls),
        speculative_config=SimpleNamespace(num_speculative_tokens=k),
        model_config=SimpleNamespace(
            max_model_len=max_len, tokenizer=str(model_dir), served_model_name="tiny", model=str(model_dir)
        ),
    )


def _params(max_tokens=20):
    p = SamplingParams(temperature=0.0, max_tokens=max_tokens)
    p.update_from_generation_config({}, eos_token_id=EOS)
    return p


def _state(prompt, output, max_tokens=20):
    return SimpleNamespace(
        sampling_params=_params(max_tokens), output_token_ids=list(output), num_prompt_tokens=len(prompt)
    )


class FakeRunner:
    """What the proposer reads of vLLM's GPUModelRunner: input_batch.req_ids and requests."""

    def __init__(self):
        self.input_batch = SimpleNamespace(req_ids=[])
        self.requests = {}
        self.rows = np.zeros((4, 64), dtype=np.int32)
        self.lens = np.zeros(4, dtype=np.int32)

    def put(self, row, req_id, prompt, output, max_tokens=20):
        while len(self.input_batch.req_ids) <= row:
            self.input_batch.req_ids.append(None)
        self.input_batch.req_ids[row] = req_id
        self.requests[req_id] = _state(prompt, output, max_tokens)
        toks = list(prompt) + list(output)
        self.rows[row, : len(toks)] = toks
        self.lens[row] = len(toks)


@pytest.fixture
def proposer(tmp_path, word_tokenizer_dir):
    store = tmp_path / "store"
    cfg = IntegrationConfig(store=store, refresh_s=0, token_cost=0)  # whole chains: see the budgets
    p = Proposer(_vllm_config(word_tokenizer_dir / "tokenizer.json"), cfg)
    runner = FakeRunner()
    p.bind(runner)
    yield p, runner, store
    p.close()


def test_refuses_to_start_without_sufdecs_worker(tmp_path, word_tokenizer_dir):
    cfg = IntegrationConfig(store=tmp_path / "s")
    with pytest.raises(MissingWorkerError, match="--worker-cls sufdec.integrations.vllm.Worker"):
        Proposer(_vllm_config(word_tokenizer_dir, worker_cls="vllm.v1.worker.cpu_worker.CPUWorker"), cfg)


def test_worker_is_the_platforms_own():
    from vllm.v1.worker.cpu_worker import CPUWorker

    from sufdec.integrations.vllm import Worker

    assert issubclass(Worker, CPUWorker) and Worker.__module__ == "sufdec.integrations.vllm.worker"


def test_rows_map_to_requests_and_drafts_respect_budgets(proposer):
    p, runner, store = proposer
    p.store.append([10, 11, 12, 13, 14, 15, 16, EOS], source={"from": "test"})
    p.service.follow_tree()
    runner.put(0, "a", [5, 10, 11], [12])  # continues the stored output
    runner.put(1, "b", [7, 7, 7], [])  # still in prefill: no sampled ids
    runner.put(2, "c", [5, 10, 11], [12, 13], max_tokens=4)  # 2 tokens left: 1 draft token
    drafts = p.propose([[12], [], [13]], runner.lens, runner.rows)
    assert drafts == [[13, 14, 15, 16], [], [14]]  # K=4 caps row 0
    assert len(p.live) == 2


def test_finished_requests_are_learned_once_and_aborted_ones_not(proposer):
    p, runner, store = proposer
    runner.put(0, "done", [5, 6], [20, 21, EOS, 99])  # accepted past EOS: cut there
    runner.put(1, "aborted", [5, 6], [30, 31])
    p.propose([[20], [30]], runner.lens, runner.rows)
    for req_id in ("done", "aborted"):
        p.request_finished(req_id, runner.requests.pop(req_id))
    assert len(p.live) == 0
    p.service.learner.flush()
    with Store.open(store, readonly=True) as s:
        got = [(x.tokens, x.source["from"], x.source["model"]) for x in s.iter_sequences()]
    assert got == [([20, 21, EOS], "vllm", "tiny")]


def test_close_learns_what_ended_in_the_last_step(tmp_path, word_tokenizer_dir):
    p = Proposer(_vllm_config(word_tokenizer_dir), IntegrationConfig(store=tmp_path / "s", refresh_s=0))
    p.close({"last": _state([1], [40, EOS]), "running": _state([1], [41, 42])})
    with Store.open(tmp_path / "s", readonly=True) as s:
        assert [x.tokens for x in s.iter_sequences()] == [[40, EOS]]


def test_a_registered_chain_kind_runs_through_the_proposer(tmp_path, word_tokenizer_dir):
    """A drafter added with one file and one registry entry drafts through vLLM's own
    call into the proposer; a setting the adapter cannot honour is refused in one line."""
    from sufdec.drafters import registry
    from sufdec.integrations.vllm.config import ConfigError
    from tests.drafters import toy_drafter

    registry.register(toy_drafter.KIND)
    try:
        cfg = IntegrationConfig.from_dict(
            {"draft": {"spec": "repeat"}, "refresh_s": 0, "token_cost": 0}, {"SUFDEC_STORE": str(tmp_path / "s")}
        )
        p = Proposer(_vllm_config(word_tokenizer_dir / "tokenizer.json"), cfg)
        runner = FakeRunner()
        p.bind(runner)
        runner.put(0, "a", [5, 6, 7, 8, 5], [6])
        assert p.propose([[6]], runner.lens, runner.rows) == [[7, 8, 5, 6]]
        assert p.live._live["a"].request.kind.name == "repeat"
        p.close()
    finally:
        registry.unregister("repeat")
    with pytest.raises(ConfigError, match="sizing must be one of cost, fixed"):
        IntegrationConfig.from_dict({"draft": {"sizing": "beta-ts"}}, {})
