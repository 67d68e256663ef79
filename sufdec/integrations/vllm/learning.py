"""Learning from vLLM: which finished requests count, and appending them off the hot path.

The worker learns of a request's end from ``SchedulerOutput.finished_req_ids``, which
names finished *and* aborted requests alike. ``ended_output`` tells them apart the way
vLLM's scheduler decides that a request stops (``vllm/v1/core/sched/utils.py``,
``check_stop``): its output reaches an EOS or stop token, ``max_tokens``, or the model's
length. Only those outputs are learned, cut where the scheduler cut them (a speculative
step can accept tokens past the stop; the runner keeps them, the user never sees them),
EOS included, as ``sufdec generate`` stores them. Requests aborted by the client and
those a stop *string* ended (vLLM's frontend aborts them) are not learned.

``Learner`` appends in a background thread, one small transaction per output, so a step
never waits for the disk.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Callable

log = logging.getLogger("vllm.sufdec")  # a child of vLLM's logger: our lines go where its lines go


def ended_output(
    output_ids: Sequence[int],
    *,
    eos_token_id: int | None,
    stop_token_ids: Sequence[int] | None,
    max_tokens: int | None,
    num_prompt_tokens: int,
    max_model_len: int,
) -> list[int] | None:
    """The output as the user received it if the request ended by itself, else None.

    Mirrors vLLM's ``check_stop`` token by token: the first EOS or stop token (kept), the
    ``max_tokens``-th token, or the token that fills the model's context ends it.
    ``eos_token_id`` is None when the request ignores EOS (vLLM leaves it unset then).
    """
    stops = set(stop_token_ids or ())
    for n, tok in enumerate(output_ids, start=1):
        if tok < 0:  # a placeholder the runner has not filled in (async scheduling)
            return None
        if tok == eos_token_id or tok in stops:
            return list(output_ids[:n])
        if num_prompt_tokens + n >= max_model_len or (max_tokens is not None and n >= max_tokens):
            return list(output_ids[:n])
    return None


class Learner:
    """Appends finished outputs to the store in a background thread, in arrival order.

    ``append(tokens, source)`` is the store's (``Store.append``). A failed append is
    logged once per kind of error and does not stop the thread; ``close`` waits for the
    queue to drain (at most ``timeout_s``).
    """

    def __init__(self, append: Callable[[Sequence[int], Mapping[str, Any]], Any]) -> None:
        self._append = append
        self._queue: queue.Queue = queue.Queue()
        self._errors: set[str] = set()
        self.learned = 0
        self.duplicates = 0
        self._thread = threading.Thread(target=self._run, name="sufdec-learner", daemon=True)
        self._thread.start()

    def submit(self, tokens: list[int], source: Mapping[str, Any]) -> None:
        self._queue.put((tokens, dict(source)))

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Wait until everything submitted so far is stored; False on timeout."""
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout_s)

    def close(self, timeout_s: float = 30.0) -> None:
        self.flush(timeout_s)
        self._queue.put(None)
        self._thread.join(timeout_s)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if isinstance(item, threading.Event):
                item.set()
                continue
            tokens, source = item
            try:
                if self._append(tokens, source) is None:
                    self.duplicates += 1
                else:
                    self.learned += 1
            except Exception as exc:  # keep serving: one line per kind of failure
                kind = type(exc).__name__
                if kind not in self._errors:
                    self._errors.add(kind)
                    log.warning("sufdec: could not store a finished output (%s: %s); "
                                "vLLM keeps serving", kind, exc)
