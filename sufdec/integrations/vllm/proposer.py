"""The proposer vLLM loads by name: drafts from a sufdec store, one chain per batch row.

    speculative_config={"method": "custom_class",
                        "model": "sufdec.integrations.vllm.Proposer",
                        "num_speculative_tokens": 8}

vLLM builds it in each worker process with its ``VllmConfig`` (in the model runner's
constructor) and calls ``propose(sampled_token_ids, num_tokens_no_spec, token_ids_cpu)``
after every step's bookkeeping (``GPUModelRunner.propose_draft_token_ids``, which the CPU
runner inherits): batch rows, no request ids. The worker class
``sufdec.integrations.vllm.Worker`` hands the proposer its model runner, whose
``input_batch.req_ids[row]`` names each row's request, and tells it which requests
finished before the runner forgets them; so the proposer refuses to start without it.

Everything here runs in the worker process; the store is opened here, after vLLM started
its processes (an LMDB environment must not cross a fork).
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
import time
from typing import Any

from sufdec.integrations.vllm.config import AUTO, AUTO_PRIOR, IntegrationConfig
from sufdec.integrations.vllm.drafting import LiveRequests
from sufdec.integrations.vllm.learning import Learner, ended_output
from sufdec.integrations.vllm.opening import check_vllm_version, open_store, served_tokenizer
from sufdec.integrations.vllm.sizing import ChainSizer, StepCost

log = logging.getLogger("vllm.sufdec")

WORKER = "sufdec.integrations.vllm.Worker"


class MissingWorkerError(RuntimeError):
    """vLLM was started with the proposer but not with sufdec's worker class."""


class Proposer:
    """Drafts chains from the store's tree and each request's own tree; learns finished outputs."""

    sufdec_worker_protocol = 1  # what the worker calls: bind, step_started, request_finished, close

    def __init__(self, vllm_config: Any, config: IntegrationConfig | None = None) -> None:
        import vllm

        check_vllm_version(vllm.__version__)
        _check_worker(vllm_config.parallel_config.worker_cls)
        self.config = config if config is not None else IntegrationConfig.from_environ(os.environ)
        self.num_speculative_tokens = int(vllm_config.speculative_config.num_speculative_tokens)
        model_config = vllm_config.model_config
        self.max_model_len = int(model_config.max_model_len)
        self.source = {"from": "vllm", "model": str(model_config.served_model_name or model_config.model)}
        self.store = open_store(self.config.store, served_tokenizer(model_config.tokenizer))
        sizer = None
        self.step_cost: StepCost | None = None  # the measured token cost ("auto")
        if self.config.draft.sizing == "cost":
            if self.config.token_cost == AUTO:
                self.step_cost = StepCost(AUTO_PRIOR)
                sizer = ChainSizer(AUTO_PRIOR)
            else:
                sizer = ChainSizer(float(self.config.token_cost))
        self.live = LiveRequests(self.config.draft, self.store.tree if self.store is not None else None, sizer)
        self.learner: Learner | None = None
        if self.store is not None and (self.config.learn and not self.store.readonly) and _first_tp_rank():
            self.learner = Learner(self.store.append)
        self._refresher = _Refresher(self.store, self.config.refresh_s) if self.store is not None else None
        self._runner: Any = None
        log.info("sufdec: drafting from %s (%s), up to %d tokens per step (%s), %s",
                 self.config.store if self.store is not None else "no store",
                 f"{len(self.store.tree)} outputs" if self.store is not None else "-",
                 min(self.num_speculative_tokens, self.config.draft.max_spec_tokens),
                 f"token cost {self.config.token_cost}" if sizer is not None else "fixed sizing",
                 "learning finished outputs" if self.learner is not None else "not learning")

    # ------------------------------------------------------------------ vLLM's interface
    def load_model(self, *args: Any, **kwargs: Any) -> None:
        """vLLM offers every drafter the target model; there is nothing to load."""

    def propose(self, sampled_token_ids: list[list[int]], num_tokens_no_spec: Any, token_ids_cpu: Any,
                slot_mappings: Any = None) -> list[list[int]]:
        """One chain per batch row (empty for rows still in prefill or at the length cap)."""
        runner = self._runner
        if runner is None:
            raise MissingWorkerError(f"sufdec's proposer was never bound to a model runner: start vLLM "
                                     f"with --worker-cls {WORKER}")
        if self.store is not None:
            self.live.use_tree(self.store.tree)  # a refresh may have reloaded the tree
        if self.step_cost is not None and self.live.sizer is not None:
            self.live.sizer.token_cost = self.step_cost.token_cost
        req_ids = runner.input_batch.req_ids
        requests = runner.requests
        drafts: list[list[int]] = []
        for row, sampled in enumerate(sampled_token_ids):
            req_id = req_ids[row]
            state = requests.get(req_id) if req_id is not None else None
            if not sampled or state is None:  # a partial prefill: nothing to continue yet
                drafts.append([])
                continue
            n = int(num_tokens_no_spec[row])
            limit = min(self.num_speculative_tokens, self.max_model_len - n - 1)
            params = state.sampling_params
            if params is not None and params.max_tokens is not None:
                limit = min(limit, params.max_tokens - len(state.output_token_ids) - 1)
            final = _final_tokens(params) if req_id not in self.live else ()
            drafts.append(self.live.draft(req_id, token_ids_cpu[row, :n], limit, final))
        if self.step_cost is not None:
            self.step_cost.ended(time.perf_counter(), sum(len(s) for s in sampled_token_ids))
        return drafts

    # ------------------------------------------------------------------ the worker's calls
    def bind(self, runner: Any) -> None:
        """Use ``runner`` (the worker's model runner) to map batch rows to requests."""
        for name in ("input_batch", "requests"):
            if not hasattr(runner, name):
                raise MissingWorkerError(f"vLLM's model runner has no {name!r}: this vLLM's runner is "
                                         "not the one sufdec was written for (V1, vLLM 0.32)")
        self._runner = runner

    def step_started(self, requests: int, drafted: int, decode_only: bool) -> None:
        """A step begins with ``requests`` requests and ``drafted`` drafted tokens to verify;
        ``decode_only``: no prompt tokens in it (the worker calls this first)."""
        if self.step_cost is not None:
            self.step_cost.started(time.perf_counter(), requests, drafted, decode_only)

    def request_finished(self, req_id: str, state: Any) -> None:
        """vLLM is done with ``req_id`` (``state``: the runner's record of it, or None).
        Learn its output if it ended by itself; aborted requests teach nothing."""
        self.live.drop(req_id)
        if self.learner is None or state is None:
            return
        output = self._ended(state)
        if output:
            self.learner.submit(output, self.source)

    def close(self, still_held: dict[str, Any] | None = None) -> None:
        """Learn requests that ended but whose end vLLM had not reported yet (it reports
        them one step later), wait for pending appends, close the store."""
        if self.learner is not None:
            for state in (still_held or {}).values():
                output = self._ended(state)
                if output:
                    self.learner.submit(output, self.source)
            self.learner.close()
            self.learner = None
        if self._refresher is not None:
            self._refresher.stop()
        if self.store is not None:
            self.store.close()
            self.store = None

    def _ended(self, state: Any) -> list[int] | None:
        params = state.sampling_params
        if params is None:  # a pooling request
            return None
        return ended_output(
            state.output_token_ids,
            eos_token_id=params.eos_token_id,
            stop_token_ids=params.stop_token_ids,
            max_tokens=params.max_tokens,
            num_prompt_tokens=state.num_prompt_tokens,
            max_model_len=self.max_model_len,
        )


class _Refresher:
    """Picks up other processes' outputs every ``period_s`` seconds, off the hot path."""

    def __init__(self, store: Any, period_s: float) -> None:
        self._store = store
        self._period = period_s
        self._stop = threading.Event()
        self._thread = None
        if period_s > 0:
            self._thread = threading.Thread(target=self._run, name="sufdec-refresh", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._period):
            try:
                self._store.refresh()
            except Exception as exc:  # the store closed under us, or a transient error
                if self._stop.is_set():
                    return
                log.warning("sufdec: could not refresh the store (%s: %s); drafting from what it had",
                            type(exc).__name__, exc)
                return

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)


def _final_tokens(params: Any) -> frozenset[int]:
    """The tokens that end a request (EOS unless ignored, stop token ids)."""
    if params is None:
        return frozenset()
    final = set(params.stop_token_ids or ())
    if params.eos_token_id is not None:
        final.add(params.eos_token_id)
    return frozenset(final)


def _check_worker(worker_cls: Any) -> None:
    """Refuse to start unless vLLM runs sufdec's worker class (or a subclass of it)."""
    from sufdec.integrations.vllm.worker import SufdecWorkerMixin

    cls = worker_cls
    if isinstance(worker_cls, str) and "." in worker_cls:
        module, _, name = worker_cls.rpartition(".")
        try:
            cls = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            cls = None
    if not (isinstance(cls, type) and issubclass(cls, SufdecWorkerMixin)):
        raise MissingWorkerError(
            f"sufdec's proposer needs vLLM's worker class to be {WORKER} (--worker-cls {WORKER}; "
            f"LLM(..., worker_cls={WORKER!r})): it tells the proposer which request each batch row "
            f"is and when requests finish; got {worker_cls!r}"
        )


def _first_tp_rank() -> bool:
    """Only one tensor-parallel rank learns (all of them draft: vLLM keeps the first's drafts)."""
    try:
        from vllm.distributed import get_tensor_model_parallel_rank

        return get_tensor_model_parallel_rank() == 0
    except Exception:  # no distributed state (a single process): this is the only rank
        return True
