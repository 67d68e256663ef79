"""Opening what the proposer needs inside vLLM, each bad state in one clear line.

* a vLLM too old for the ``custom_class`` proposer interface: refused; a newer one than
  tested: one warning (the interface is marked experimental by vLLM);
* the served model's tokenizer, fingerprinted as ``sufdec index`` does, so that a store
  built with another tokenizer is refused instead of drafting garbage ids;
* the store: created when missing (learning fills it), opened read-only when it cannot be
  written (drafting without learning, said once), and when it cannot be opened at all the
  server still drafts from each request's own prompt and output.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

from sufdec.store import Store, StoreError, StoreNotFoundError, TokenizerMismatchError
from sufdec.store.meta import TokenizerInfo
from sufdec.tokenization import load_tokenizer

log = logging.getLogger("vllm.sufdec")

TESTED = (0, 32)  # vLLM releases this adapter was tested on: 0.32.x
OLDEST = (0, 32)  # custom_class proposers with propose(sampled, num_tokens_no_spec, token_ids_cpu)


class IncompatibleVllmError(RuntimeError):
    """This vLLM does not have the interface the integration relies on."""


def check_vllm_version(version: str) -> None:
    """Refuse a vLLM older than ``OLDEST``; warn once about one newer than ``TESTED``."""
    try:
        major_minor = tuple(int(p) for p in version.split(".")[:2])
    except ValueError:
        log.warning("sufdec: cannot read the vLLM version %r; tested with %d.%d", version, *TESTED)
        return
    if major_minor < OLDEST:
        raise IncompatibleVllmError(
            f"sufdec needs vLLM >= {OLDEST[0]}.{OLDEST[1]} (its custom_class proposer interface); found {version}"
        )
    if major_minor > TESTED:
        log.warning("sufdec: tested with vLLM %d.%d, running on %s: vLLM marks its custom_class "
                    "proposer interface experimental; if drafting fails, pin vllm==%d.%d.*",
                    *TESTED, version, *TESTED)


def served_tokenizer(spec: str) -> TokenizerInfo:
    """The store identity of the tokenizer vLLM serves (a folder or a hub id vLLM fetched)."""
    tok = load_tokenizer(spec)
    return TokenizerInfo(Path(tok.name).stem, tok.fingerprint)


def open_store(
    path: Path,
    tokenizer: TokenizerInfo,
    *,
    open_fn: Callable[..., Store] = Store.open,
) -> Store | None:
    """The store at ``path`` for drafting (and learning, if writable), or None.

    Raises ``TokenizerMismatchError`` for a store of another tokenizer: serving would go
    on, drafting nothing useful, so vLLM refuses to start with that line instead.
    """
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
        return _open_readonly(path, tokenizer, open_fn, first)
    if store.readonly:
        log.warning("sufdec: the store at %s is read-only: drafting from it without learning", path)
    return store


def _open_readonly(path: Path, tokenizer: TokenizerInfo, open_fn: Callable[..., Store],
                   first: StoreError) -> Store | None:
    """The store opened read-only after a writable open failed with ``first``, or None."""
    try:
        store = open_fn(path, tokenizer, create=False, readonly=True)
    except TokenizerMismatchError as exc:
        log.error("sufdec: %s", exc)
        raise
    except StoreError as exc:
        log.warning("sufdec: cannot open the store at %s (%s); drafting from each request's "
                    "own tokens only, learning nothing", path, exc)
        return None
    log.warning("sufdec: the store at %s cannot be written (%s): drafting from it without learning",
                path, first)
    return store
