"""The worker class vLLM runs (``--worker-cls sufdec.integrations.vllm.Worker``).

vLLM's ``custom_class`` proposer sees batch rows only. The worker sees every step's
``SchedulerOutput`` first, in the same process as the proposer: ``finished_req_ids``
names the requests vLLM is done with, before its model runner forgets them (the runner
drops them at the top of ``execute_model``). So this worker, a subclass of the platform's
own, does three things and nothing else: it hands the proposer the model runner (whose
``input_batch.req_ids`` maps rows to requests); before each step, it reports the finished
requests with the runner's record of them (prompt length, output ids, sampling params);
and it says when the step starts, with how many requests and drafted tokens, which is how
the proposer measures what a verified token costs (``sizing.StepCost``).
At shutdown it lets the proposer learn requests that ended in the last step and flush.

We chose this over the alternatives because it is exact and uses only configuration
knobs: custom logits processors would see requests come and go but vLLM refuses them
with speculative decoding; ``worker_extension_cls`` cannot override methods; a general
plugin would have to patch vLLM's classes.

``Worker`` is built on first use over the platform's worker (``CPUWorker`` on CPU, the
GPU ``Worker`` on CUDA and ROCm), so one name serves every build.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("vllm.sufdec")


class SufdecWorkerMixin:
    """Connects a vLLM worker's model runner to sufdec's proposer (if that is its drafter)."""

    _sufdec_bound = False

    def _sufdec_proposer(self) -> Any:
        """The runner's drafter if it is sufdec's proposer (it says so), else None."""
        drafter = getattr(getattr(self, "model_runner", None), "drafter", None)
        return drafter if getattr(drafter, "sufdec_worker_protocol", 0) == 1 else None

    def execute_model(self, scheduler_output: Any) -> Any:
        proposer = self._sufdec_proposer()
        if proposer is not None:
            runner = self.model_runner  # type: ignore[attr-defined]
            if not self._sufdec_bound:
                proposer.bind(runner)
                self._sufdec_bound = True
            for req_id in scheduler_output.finished_req_ids:
                proposer.request_finished(req_id, runner.requests.get(req_id))
            proposer.step_started(*_step_shape(scheduler_output))
        return super().execute_model(scheduler_output)  # type: ignore[misc]

    def shutdown(self) -> None:
        proposer = self._sufdec_proposer()
        if proposer is not None:
            try:
                proposer.close(dict(self.model_runner.requests))  # type: ignore[attr-defined]
            except Exception as exc:  # never block vLLM's own shutdown
                log.warning("sufdec: closing the store failed (%s: %s)", type(exc).__name__, exc)
        super().shutdown()  # type: ignore[misc]


def _step_shape(scheduler_output: Any) -> tuple[int, int, bool]:
    """(requests, drafted tokens, decode only) of a step: decode only when no request
    computes prompt tokens (each computes its last sampled token and its drafted ones)."""
    scheduled = getattr(scheduler_output, "num_scheduled_tokens", None) or {}
    spec = getattr(scheduler_output, "scheduled_spec_decode_tokens", None) or {}
    drafted = sum(len(v) for v in spec.values())
    decode_only = not getattr(scheduler_output, "scheduled_new_reqs", None) and all(
        n == 1 + len(spec.get(r, ())) for r, n in scheduled.items()
    )
    return len(scheduled), drafted, decode_only


def platform_worker() -> type:
    """The worker class vLLM would run on this platform by default."""
    from vllm.platforms import current_platform

    if current_platform.is_cpu():
        from vllm.v1.worker.cpu_worker import CPUWorker

        return CPUWorker
    if current_platform.is_cuda_alike():
        from vllm.v1.worker.gpu_worker import Worker

        return Worker
    from sufdec.integrations.vllm.opening import IncompatibleVllmError

    raise IncompatibleVllmError(
        f"sufdec's vLLM worker supports the CPU, CUDA and ROCm platforms, not {current_platform.device_name!r}"
    )


def _build_worker() -> type:
    base = platform_worker()
    return type(
        "Worker",
        (SufdecWorkerMixin, base),
        {
            "__module__": __name__,
            "__qualname__": "Worker",
            "__doc__": f"vLLM's {base.__name__} that connects its model runner to sufdec's proposer.",
        },
    )


def __getattr__(name: str) -> Any:
    if name == "Worker":
        cls = globals()["Worker"] = _build_worker()
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
