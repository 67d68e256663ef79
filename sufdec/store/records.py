"""The values the store hands in and out: records to add, stored sequences, summaries of
a write, and the counts behind ``sufdec stats``. Plain frozen dataclasses with no
database code, so any layer can build or read them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import codec


@dataclass(frozen=True)
class SequenceRecord:
    """One output to store: its token ids and where it came from (msgpack-able values)."""

    tokens: Sequence[int]
    source: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StoredSequence:
    seq_id: int
    tokens: list[int]
    content_hash: bytes
    source: dict[str, Any]

    @classmethod
    def decode(cls, seq_id: int, value: bytes) -> StoredSequence:
        """The sequence stored under ``seq_id`` as the ``sequences`` database holds it."""
        tok_bytes, digest, source = codec.decode_sequence(value)
        return cls(seq_id, codec.tokens_from_bytes(tok_bytes).tolist(), digest, source)


@dataclass(frozen=True)
class AddSummary:
    """What a write of new outputs did; ``evicted`` sequences (``evicted_tokens`` tokens)
    were removed in the same transactions to keep the budget."""

    added: int = 0
    duplicates: int = 0
    tokens_added: int = 0
    transactions: int = 0
    evicted: int = 0
    evicted_tokens: int = 0

    def __add__(self, other: AddSummary) -> AddSummary:
        return AddSummary(*(a + b for a, b in zip(dataclasses.astuple(self), dataclasses.astuple(other))))


@dataclass(frozen=True)
class StoreStats:
    path: str
    sequences: int
    tokens: int
    disk_bytes: int
    map_size: int
    used_bytes: int
    page_size: int
    tokenizer_name: str | None
    tokenizer_fingerprint: str | None
    format_version: int
    created: float
    max_depth: int
    log_length: int
    log_tokens: int
    snapshot_bytes: int
    snapshot_log_pos: int
    max_tokens: int = 0  # the budget (0 = unlimited)
    max_bytes: int = 0
    eviction: str = "fifo"
