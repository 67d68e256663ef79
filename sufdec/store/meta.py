"""The ``meta`` database: format magic and version, tokenizer identity, counters.

Every value is msgpack under a short string key. ``StoreMeta`` is an immutable view of
all of them, read in one transaction; writers put back only the fields they change.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

from . import codec
from .errors import FormatTooNewError, NotAStoreError, StoreCorruptError, TokenizerMismatchError

FORMAT_MAGIC = "sufdec-store"
FORMAT_VERSION = 1
EVICTION_POLICIES = ("fifo", "lru")
MAX_BUDGET = 2**63 - 1  # a budget is stored as msgpack, whose integers end at 64 bits
MAX_TREE_DEPTH = 65535  # the suffix tree's own limit


@dataclass(frozen=True)
class TokenizerInfo:
    """Which tokenizer produced a store's token ids: a display name and a fingerprint
    that changes whenever the id mapping does (the tokenization module computes it)."""

    name: str
    fingerprint: str


@dataclass(frozen=True)
class StoreMeta:
    """Everything in the ``meta`` database.

    Log positions: records ``[snapshot_log_pos, next_log_pos)`` are in the log and not
    yet in the snapshot; ``log_tokens`` counts the tokens they add (checkpoint trigger).
    """

    magic: str
    format_version: int
    created: float
    tokenizer_name: str | None
    tokenizer_fingerprint: str | None
    max_depth: int
    next_seq_id: int = 0
    next_log_pos: int = 0
    snapshot_log_pos: int = 0
    snapshot_generation: int = 0
    snapshot_chunks: int = 0
    snapshot_bytes: int = 0
    snapshot_digest: bytes = b""
    total_tokens: int = 0
    log_tokens: int = 0
    # Budget (0 = unlimited); optional keys, so older stores read as unlimited.
    max_tokens: int = 0
    max_bytes: int = 0
    eviction: str = "fifo"

    @property
    def tokenizer(self) -> TokenizerInfo | None:
        if self.tokenizer_fingerprint is None:
            return None
        return TokenizerInfo(self.tokenizer_name or "", self.tokenizer_fingerprint)

    @property
    def log_length(self) -> int:
        return self.next_log_pos - self.snapshot_log_pos


_FIELDS = {f.name for f in dataclasses.fields(StoreMeta)}


def initial_meta(tokenizer: TokenizerInfo | None, max_depth: int) -> StoreMeta:
    return StoreMeta(
        magic=FORMAT_MAGIC,
        format_version=FORMAT_VERSION,
        created=time.time(),
        tokenizer_name=tokenizer.name if tokenizer else None,
        tokenizer_fingerprint=tokenizer.fingerprint if tokenizer else None,
        max_depth=max_depth,
    )


def read_raw(txn: Any, db: Any) -> dict[str, Any]:
    """All meta keys as a plain dict (what migrations operate on)."""
    out = {}
    for k, v in txn.cursor(db=db):
        key = bytes(k).decode("utf-8", "replace")
        try:
            out[key] = codec.unpack(v)
        except Exception:  # noqa: BLE001 - msgpack raises several unrelated types
            raise StoreCorruptError(
                f"the store's meta value {key!r} cannot be decoded (a damaged or foreign store)"
            ) from None
    return out


_TYPES = {
    "magic": str,
    "created": (int, float),
    "tokenizer_name": (str, type(None)),
    "tokenizer_fingerprint": (str, type(None)),
    "snapshot_digest": bytes,
    "eviction": str,
}
_TYPE_NAMES = {
    str: "a string",
    bytes: "bytes",
    int: "an integer",
    (int, float): "a number",
    (str, type(None)): "a string",
}


def _value_problem(name: str, value: Any) -> str | None:
    """What is wrong with one meta value (None: nothing): its type, then its range."""
    want = _TYPES.get(name, int)
    if not isinstance(value, want) or (want is int and isinstance(value, bool)):
        return f"not {_TYPE_NAMES[want]}"
    if name == "eviction" and value not in EVICTION_POLICIES:
        return f"not one of {', '.join(EVICTION_POLICIES)}"
    if name == "max_depth" and not 1 <= value <= MAX_TREE_DEPTH:
        return f"not a tree depth (1 to {MAX_TREE_DEPTH})"
    if name == "format_version" and value < 1:
        return "not a format version (1 or more)"
    if name in ("max_tokens", "max_bytes") and not 0 <= value <= MAX_BUDGET:
        return "not a budget (0 = unlimited, at most 2**63-1)"
    if want is int and value < 0:
        return "negative"
    return None


def _check_types(raw: dict[str, Any]) -> None:
    """A hand-edited meta value of the wrong type or out of its range is refused here, not
    deep inside a write (or as a ValueError from whatever reads it first)."""
    for name in sorted(_FIELDS & raw.keys()):
        problem = _value_problem(name, raw[name])
        if problem is not None:
            raise StoreCorruptError(
                f"the store's metadata is damaged: its meta value {name!r} is {raw[name]!r}, {problem} "
                "(edited by hand?); put the right value back, or restore the store from a backup"
            )
    if raw.get("snapshot_log_pos", 0) > raw.get("next_log_pos", 0):
        raise StoreCorruptError(
            f"the store's metadata is damaged: its snapshot covers log position {raw['snapshot_log_pos']!r}, beyond "
            f"the log's end {raw.get('next_log_pos', 0)!r} (edited by hand?); put the right values back, or restore "
            "the store from a backup"
        )


def write_raw(txn: Any, db: Any, values: dict[str, Any]) -> None:
    for key, value in values.items():
        txn.put(key.encode(), codec.pack(value), db=db)


def read_meta(txn: Any, db: Any) -> StoreMeta:
    raw = read_raw(txn, db)
    if raw.get("magic") != FORMAT_MAGIC:
        raise NotAStoreError("this LMDB environment is not a sufdec store (no format magic)")
    _check_types(raw)
    try:
        return StoreMeta(**{k: v for k, v in raw.items() if k in _FIELDS})
    except TypeError as exc:
        raise NotAStoreError(f"the store's meta database is incomplete: {exc}") from None


def write_meta(txn: Any, db: Any, meta: StoreMeta, old: StoreMeta | None = None) -> None:
    """Put every field of ``meta`` (or only those that differ from ``old``)."""
    values = dataclasses.asdict(meta)
    if old is not None:
        before = dataclasses.asdict(old)
        values = {k: v for k, v in values.items() if before[k] != v}
    write_raw(txn, db, values)


def check_version(version: int, path: str) -> None:
    if version > FORMAT_VERSION:
        raise FormatTooNewError(
            f"the store at {path} has format version {version}, newer than the {FORMAT_VERSION} "
            "this sufdec reads; upgrade sufdec to open it."
        )


def check_tokenizer(meta: StoreMeta, tokenizer: TokenizerInfo | None, path: str) -> None:
    """Refuse a store whose recorded tokenizer fingerprint differs from ``tokenizer``."""
    recorded = meta.tokenizer
    if tokenizer is None or recorded is None:
        return
    if recorded.fingerprint != tokenizer.fingerprint:
        raise TokenizerMismatchError(
            f"the store at {path} was built with tokenizer {recorded.name!r} "
            f"(fingerprint {recorded.fingerprint[:12]}), not {tokenizer.name!r} "
            f"(fingerprint {tokenizer.fingerprint[:12]}); use another --store or the same model."
        )
