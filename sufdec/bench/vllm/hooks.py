"""A vLLM worker extension for the benchmark (``worker_extension_cls``), called through
``LLM.collective_rpc`` by name; it runs in the worker process, where the proposer lives.

* ``bench_install_timer``: wraps the drafter's ``propose`` to count calls and seconds;
* ``bench_timing``: those totals so far;
* ``bench_token_cost``: sufdec's token cost as sized now (measured or fixed), with the fit;
* ``bench_reset``: puts the method's history back to a cell's start state, so that no cell
  drafts from answers of an earlier cell: vLLM's ``suffix`` gets a new, empty cache (then
  the train corpus, when ``corpus`` is given: the cache it would hold after serving those
  requests); sufdec's proposer stores what it has queued, removes every output it learned
  (source ``vllm``; the corpus was indexed with another source) and starts a fresh
  acceptance calibration, as a freshly started server would.

vLLM adds these methods to its worker class; none of them exists there already.
"""

from __future__ import annotations

import time
from typing import Any, Optional, Sequence


class BenchHooks:
    """Mixed into vLLM's worker by ``worker_extension_cls``."""

    def _bench_drafter(self) -> Any:
        return getattr(getattr(self, "model_runner", None), "drafter", None)

    def bench_install_timer(self) -> str:
        """Time every ``propose`` call of the drafter; returns the drafter's class name."""
        drafter = self._bench_drafter()
        if drafter is None:
            return "none"
        if getattr(drafter, "_bench_timed", False):
            return type(drafter).__name__
        inner = drafter.propose
        totals = drafter._bench_totals = [0, 0.0]

        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                totals[0] += 1
                totals[1] += time.perf_counter() - t0

        drafter.propose = timed
        drafter._bench_timed = True
        return type(drafter).__name__

    def bench_timing(self) -> list:
        """[propose calls, seconds in propose] since the timer was installed."""
        drafter = self._bench_drafter()
        totals = getattr(drafter, "_bench_totals", None)
        return list(totals) if totals is not None else [0, 0.0]

    def bench_token_cost(self) -> dict:
        """sufdec's current token cost and, when measured, its fit of the step time."""
        drafter = self._bench_drafter()
        if getattr(drafter, "sufdec_worker_protocol", 0) != 1 or drafter.service.token_price() is None:
            return {}
        if drafter.config.token_cost != "auto":
            return {"token_cost": drafter.token_cost(), "measured": False}
        step = drafter.service.controls.steps
        fit = step.fit()
        return {
            "token_cost": step.token_cost,
            "measured": True,
            "steps": step.steps,
            "step_s": fit[0] if fit else None,
            "request_s": fit[1] if fit else None,
            "draft_token_s": fit[2] if fit else None,
            "history": list(step.history),
        }

    def bench_reset(self, corpus: Optional[Sequence[Sequence[Sequence[int]]]] = None) -> dict:
        """Back to a cell's start state; ``corpus``: [prompt ids, output ids] pairs that
        vLLM's suffix cache is given as if it had served them. Returns what was done."""
        drafter = self._bench_drafter()
        if drafter is None:
            return {}
        if getattr(drafter, "sufdec_worker_protocol", 0) == 1:
            return _reset_sufdec(drafter)
        if type(drafter).__name__ == "SuffixDecodingProposer":
            spec = self.vllm_config.speculative_config  # type: ignore[attr-defined]
            return _reset_suffix(drafter, spec.suffix_decoding_max_cached_requests, corpus or ())
        return {}


def _reset_sufdec(proposer: Any) -> dict:
    learned = 0
    service = proposer.service
    if service.learner is not None:
        service.learner.flush(60.0)
        learned = service.learner.learned
    removed = 0
    store = proposer.store
    if store is not None:
        ids = [s.seq_id for s in store.iter_sequences() if (s.source or {}).get("from") == "vllm"]
        removed = sum(bool(store.remove(i)) for i in ids)
        proposer.service.follow_tree()
    service.controls.calibrations.clear()
    service.controls.steps.reset()
    return {"learned_total": learned, "removed": removed, "store_outputs": len(store.tree) if store is not None else 0}


def _reset_suffix(proposer: Any, max_cached: int, corpus: Sequence[Sequence[Sequence[int]]]) -> dict:
    import numpy as np
    from arctic_inference.suffix_decoding import SuffixDecodingCache

    cache = SuffixDecodingCache(max_tree_depth=proposer.max_tree_depth, max_cached_requests=max_cached)
    for n, (prompt, output) in enumerate(corpus):  # what serving these requests leaves in it
        rid = f"bench-train-{n}"
        cache.start_request(rid, np.asarray(prompt, dtype=np.int32))
        cache.add_active_response(rid, [int(t) for t in output])
        cache.stop_request(rid)
    proposer.suffix_cache = cache
    return {"cached_requests": len(cache.cached_requests)}
