"""A drafting service for an engine that serves many requests from a store it shares.

What every serving engine needs around the drafting service, written once (the vLLM
adapter uses it; the next engine's adapter does too):

    service = open_serving(path, store_identity(tokenizer), settings, source={"from": "vllm"},
                           price="measured", log=log)
    service.follow_tree()   # before each step's proposals: running requests use a reloaded tree
    service.close()         # queued outputs stored, the follower stopped, the store closed

The store is opened as well as it can be, each bad state in one line: created when
missing (learning fills it), opened read-only when it cannot be written (drafting without
learning), and when it cannot be opened at all the service still drafts from each
request's own tokens. A store of another tokenizer is refused (``TokenizerMismatchError``):
serving would go on drafting ids of another vocabulary. A follower thread picks up other
processes' outputs every ``refresh_s`` seconds; finished outputs are stored by a
background thread, so no step waits for the disk.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from sufdec.drafters.service import DraftService
from sufdec.drafters.settings import DraftSettings
from sufdec.drafters.stepcost import TOKEN_COST_PRIOR
from sufdec.share import Replica
from sufdec.store import Store, StoreError, StoreNotFoundError, TokenizerMismatchError
from sufdec.store.meta import TokenizerInfo
from sufdec.tokenization import load_tokenizer

_LOG = logging.getLogger("sufdec")


def store_identity(tokenizer_spec: str) -> TokenizerInfo:
    """The store identity of a tokenizer (a folder, a tokenizer.json or a hub id), as
    ``sufdec index`` records it."""
    tok = load_tokenizer(tokenizer_spec)
    return TokenizerInfo(Path(tok.name).stem, tok.fingerprint)


def open_serving(
    path: Path,
    tokenizer: TokenizerInfo,
    settings: DraftSettings,
    *,
    learn: bool = True,
    source: Mapping[str, Any] | None = None,
    refresh_s: float = 1.0,
    price: float | str | None = None,
    prior: float = TOKEN_COST_PRIOR,
    log: logging.Logger = _LOG,
    open_fn: Callable[..., Store] = Store.open,
    share: str | None = None,
    catch_up_s: float = 60.0,
) -> DraftService:
    """A drafting service over the store at ``path`` (see the module); ``learn``: store
    outputs that ended by themselves, tagged with ``source``; ``price``/``prior``: see
    ``DraftService``; ``share``: the PostgreSQL URL of a corpus shared with other hosts
    (``sufdec.share``: what they learn is followed, what this engine learns published).
    With ``share``, it returns once the first round with the table ended (the engine starts
    warm), or after ``catch_up_s``, the round then going on in the background."""
    store = open_store(path, tokenizer, log=log, open_fn=open_fn)
    learns = store is not None and learn and not store.readonly
    tag = dict(source or {})
    service = DraftService(
        settings,
        tree=(lambda: store.tree) if store is not None else None,
        learn=(lambda ids: store.append(ids, tag)) if learns else None,
        learn_in_background=True,
        log=log,
        price=price,
        prior=prior,
    )
    service.store = store
    if store is not None:
        follower = Follower(store, refresh_s, log)
        service.on_close(follower.stop)
        if share is not None and not store.readonly:
            replica = Replica(store, share, log=log).start()
            service.on_close(replica.close)  # before the store closes: a last round publishes
            if not replica.first_round.wait(catch_up_s):
                log.warning(
                    "sufdec: still catching up with the shared corpus after %.0f s; serving meanwhile", catch_up_s
                )
        service.on_close(store.close)
    return service


def open_store(
    path: Path, tokenizer: TokenizerInfo, *, log: logging.Logger = _LOG, open_fn: Callable[..., Store] = Store.open
) -> Store | None:
    """The store at ``path`` for drafting (and learning, if writable), or None."""
    try:
        try:
            store = open_fn(path, tokenizer, create=False)
        except StoreNotFoundError:
            store = open_fn(path, tokenizer, create=True)
            log.info("sufdec: no store at %s yet; created an empty one (it fills as requests finish)", path)
    except TokenizerMismatchError as exc:
        log.error("sufdec: %s", exc)
        raise
    except StoreError as first:
        return _open_readonly(path, tokenizer, open_fn, first, log)
    if store.readonly:
        log.warning("sufdec: the store at %s is read-only: drafting from it without learning", path)
    return store


def _open_readonly(
    path: Path, tokenizer: TokenizerInfo, open_fn: Callable[..., Store], first: StoreError, log: logging.Logger
) -> Store | None:
    """The store opened read-only after a writable open failed with ``first``, or None."""
    try:
        store = open_fn(path, tokenizer, create=False, readonly=True)
    except TokenizerMismatchError as exc:
        log.error("sufdec: %s", exc)
        raise
    except StoreError as exc:
        log.warning(
            "sufdec: cannot open the store at %s (%s); drafting from each request's own tokens only, learning nothing",
            path,
            exc,
        )
        return None
    log.warning("sufdec: the store at %s cannot be written (%s): drafting from it without learning", path, first)
    return store


class Follower:
    """Picks up other processes' outputs every ``period_s`` seconds, off the hot path
    (0: never; the service's ``follow_tree`` then sees only this process's)."""

    def __init__(self, store: Any, period_s: float, log: logging.Logger = _LOG) -> None:
        self._store, self._period, self._log = store, period_s, log
        self._stop = threading.Event()
        self._thread = None
        if period_s > 0:
            self._thread = threading.Thread(target=self._run, name="sufdec-follow", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._period):
            try:
                self._store.refresh()
            except Exception as exc:  # the store closed under us, or a transient error
                if not self._stop.is_set():
                    self._log.warning(
                        "sufdec: could not refresh the store (%s: %s); drafting from what it had",
                        type(exc).__name__,
                        exc,
                    )
                return

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
