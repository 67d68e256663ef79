"""The proposer vLLM loads by name: a thin adapter over sufdec's drafting service.

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

What it adds to the service (``sufdec.drafters.service``) is only what vLLM forces: rows to
requests, each request's limits read from vLLM's records, the step timing that prices a
verified token (``ControlState.price``), which finished outputs count (``learning``).
Everything here runs in the worker process; the store is opened here, after vLLM started
its processes (an LMDB environment must not cross a fork).
"""

from __future__ import annotations

import importlib
import logging
import os
import time
from typing import Any

from sufdec.drafters.serving import open_serving, store_identity
from sufdec.integrations.vllm.config import AUTO, IntegrationConfig
from sufdec.integrations.vllm.drafting import LiveRequests
from sufdec.integrations.vllm.learning import ended_output
from sufdec.integrations.vllm.opening import check_vllm_version

log = logging.getLogger("vllm.sufdec")

WORKER = "sufdec.integrations.vllm.Worker"


class MissingWorkerError(RuntimeError):
    """vLLM was started with the proposer but not with sufdec's worker class."""


class Proposer:
    """vLLM's drafter: one drafting-service request per running request, a chain per row."""

    sufdec_worker_protocol = 1  # what the worker calls: bind, step_started, request_finished, close

    def __init__(self, vllm_config: Any, config: IntegrationConfig | None = None) -> None:
        import vllm

        check_vllm_version(vllm.__version__)
        _check_worker(vllm_config.parallel_config.worker_cls)
        self.config = config if config is not None else IntegrationConfig.from_environ(os.environ)
        self.num_speculative_tokens = int(vllm_config.speculative_config.num_speculative_tokens)
        model_config = vllm_config.model_config
        self.max_model_len = int(model_config.max_model_len)
        self.service = open_serving(
            self.config.store,
            store_identity(model_config.tokenizer),
            self.config.draft,
            learn=self.config.learn and _first_tp_rank(),
            refresh_s=self.config.refresh_s,
            log=log,
            source={"from": "vllm", "model": str(model_config.served_model_name or model_config.model)},
            price="measured" if self.config.token_cost == AUTO else self.config.token_cost,
            share=self.config.share if _first_tp_rank() else None,
        )
        self.live = LiveRequests(self.service)
        self._runner: Any = None
        self._step: tuple[float, int, int] | None = None  # (start, requests, drafted) of a decode step
        store = self.service.store
        log.info(
            "sufdec: drafting from %s (%s), up to %d tokens per step (%s), %s",
            self.config.store if store is not None else "no store",
            f"{len(store.tree)} outputs" if store is not None else "-",
            min(self.num_speculative_tokens, self.config.draft.max_spec_tokens),
            f"token cost {self.config.token_cost}" if self.config.draft.sizing == "cost" else "fixed sizing",
            "learning finished outputs" if self.service.learn is not None else "not learning",
        )

    @property
    def store(self) -> Any:
        return self.service.store

    def token_cost(self) -> float:
        """What verifying one drafted token costs now, in tokens of output."""
        return self.service.token_price() or 0.0

    # ------------------------------------------------------------------ vLLM's interface
    def load_model(self, *args: Any, **kwargs: Any) -> None:
        """vLLM offers every drafter the target model; there is nothing to load."""

    def propose(
        self, sampled_token_ids: list[list[int]], num_tokens_no_spec: Any, token_ids_cpu: Any, slot_mappings: Any = None
    ) -> list[list[int]]:
        """One chain per batch row (empty for rows still in prefill or at the length cap)."""
        runner = self._runner
        if runner is None:
            raise MissingWorkerError(
                f"sufdec's proposer was never bound to a model runner: start vLLM with --worker-cls {WORKER}"
            )
        self.service.follow_tree()  # a refresh may have reloaded the store's tree
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
        if self._step is not None:
            begun, r, d = self._step
            self._step = None
            self.service.timed_step(r, d, time.perf_counter() - begun, sum(len(s) for s in sampled_token_ids))
        return drafts

    # ------------------------------------------------------------------ the worker's calls
    def bind(self, runner: Any) -> None:
        """Use ``runner`` (the worker's model runner) to map batch rows to requests."""
        for name in ("input_batch", "requests"):
            if not hasattr(runner, name):
                raise MissingWorkerError(
                    f"vLLM's model runner has no {name!r}: this vLLM's runner is "
                    "not the one sufdec was written for (V1, vLLM 0.32)"
                )
        self._runner = runner

    def step_started(self, requests: int, drafted: int, decode_only: bool) -> None:
        """A step begins with ``requests`` requests and ``drafted`` drafted tokens to verify;
        ``decode_only``: no prompt tokens in it (only such steps price a drafted token)."""
        self._step = (time.perf_counter(), requests, drafted) if decode_only and requests > 0 else None

    def request_finished(self, req_id: str, state: Any) -> None:
        """vLLM is done with ``req_id`` (``state``: the runner's record of it, or None): the
        service learns its output if it ended by itself; aborted requests teach nothing."""
        self.live.finish(req_id, self._ended(state) if state is not None else None)

    def close(self, still_held: dict[str, Any] | None = None) -> None:
        """Learn requests that ended but whose end vLLM had not reported yet (it reports
        them one step later), wait for pending appends, close the store."""
        for req_id, state in (still_held or {}).items():
            self.live.finish(req_id, self._ended(state))
        self.service.close()
        self.service.store = None

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
