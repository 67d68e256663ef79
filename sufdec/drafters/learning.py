"""Learning finished outputs off an engine's hot path: a background thread that stores them.

The drafting service learns an output once, when its request ended by itself
(``DraftService.learn_output``). An engine that must not wait for the disk in a step
(vLLM: one worker thread serves every request) opens the service with
``learn_in_background=True``, and the service hands each output to a ``BackgroundLearner``:
stored in arrival order, one small transaction each, a failed store logged once per kind
of error without stopping the thread.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any


class BackgroundLearner:
    """Calls ``learn(output_ids)`` in a background thread, in arrival order.

    ``learned`` counts the outputs stored, ``duplicates`` those the store already had
    (``learn`` returned None); ``close`` waits for the queue to drain (at most ``timeout_s``).
    """

    def __init__(self, learn: Callable[[list[int]], Any], log: logging.Logger | None = None) -> None:
        self._learn = learn
        self._log = log if log is not None else logging.getLogger("sufdec")
        self._queue: queue.Queue = queue.Queue()
        self._errors: set[str] = set()
        self.learned = 0
        self.duplicates = 0
        self._thread = threading.Thread(target=self._run, name="sufdec-learner", daemon=True)
        self._thread.start()

    def submit(self, output_ids: list[int]) -> None:
        self._queue.put(list(output_ids))

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
            try:
                if self._learn(item) is None:
                    self.duplicates += 1
                else:
                    self.learned += 1
            except Exception as exc:  # keep serving: one line per kind of failure
                kind = type(exc).__name__
                if kind not in self._errors:
                    self._errors.add(kind)
                    self._log.warning(
                        "sufdec: could not store a finished output (%s: %s); generation goes on", kind, exc
                    )
