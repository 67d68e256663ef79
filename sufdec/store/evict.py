"""Bounded growth: a store's budget and the eviction that keeps it, inside a write transaction.

A budget caps the stored tokens (``max_tokens``) and/or the bytes of the stored records
(``max_bytes``: the pages of the ``sequences`` and ``hashes`` databases, as LMDB counts
them inside the transaction; the derived tree snapshot is not counted). When a write
exceeds it, the oldest sequences are removed in the same transaction, each with a log
record, so the tree follows on replay and a crash keeps either the write and its
evictions or neither.

Order: ``fifo`` evicts by sequence id (oldest append first). ``lru`` is the same queue
plus a touch: appending an output that is already stored moves it to the back (it gets a
new id), so outputs the model keeps producing stay. Drafting from a sequence does not
count as a use (readers never write).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Optional

from . import codec
from .meta import EVICTION_POLICIES, MAX_BUDGET, StoreMeta


@dataclass(frozen=True)
class Budget:
    """Limits a store keeps (0 = unlimited) and the eviction order."""

    max_tokens: int = 0
    max_bytes: int = 0
    eviction: str = "fifo"

    def __post_init__(self) -> None:
        if self.max_tokens < 0 or self.max_bytes < 0:
            raise ValueError("a budget must not be negative (0 means unlimited)")
        if max(self.max_tokens, self.max_bytes) > MAX_BUDGET:
            raise ValueError(f"a budget must be at most {MAX_BUDGET:,} (0 means unlimited)")
        if self.eviction not in EVICTION_POLICIES:
            raise ValueError(f"eviction must be one of {', '.join(EVICTION_POLICIES)}, not {self.eviction!r}")

    @property
    def unlimited(self) -> bool:
        return self.max_tokens == 0 and self.max_bytes == 0

    @classmethod
    def of(cls, meta: StoreMeta) -> Budget:
        return cls(meta.max_tokens, meta.max_bytes, meta.eviction)


@dataclass(frozen=True)
class EvictSummary:
    sequences: int = 0
    tokens: int = 0
    removed_ids: tuple[int, ...] = ()


# A tree operation to mirror after commit: (LOG_ADD, seq_id, tokens) or (LOG_REMOVE, seq_id, None).
Op = tuple[bytes, int, Any]


def record_bytes(txn: Any, dbs: Any) -> int:
    """Bytes of the stored records: pages of ``sequences`` and ``hashes`` (this txn's view)."""
    total = 0
    for db in (dbs.sequences, dbs.hashes):
        st = txn.stat(db)
        total += (st["branch_pages"] + st["leaf_pages"] + st["overflow_pages"]) * st["psize"]
    return total


def _over(txn: Any, dbs: Any, meta: StoreMeta, budget: Budget) -> bool:
    if budget.max_tokens and meta.total_tokens > budget.max_tokens:
        return True
    return bool(budget.max_bytes) and record_bytes(txn, dbs) > budget.max_bytes


def remove_in_txn(txn: Any, dbs: Any, meta: StoreMeta, seq_id: int) -> tuple[StoreMeta, int] | None:
    """Delete one sequence and its hash and log the removal; (new meta, tokens) or None."""
    key = codec.u64_key(seq_id)
    stored = txn.get(key, db=dbs.sequences)
    if stored is None:
        return None
    tok_bytes, digest, _ = codec.decode_sequence(stored)
    txn.delete(key, db=dbs.sequences)
    if txn.get(digest, db=dbs.hashes) == key:
        txn.delete(digest, db=dbs.hashes)
    txn.put(codec.u64_key(meta.next_log_pos), codec.encode_log(codec.LOG_REMOVE, seq_id), db=dbs.log)
    tokens = len(tok_bytes) // 4
    new = dataclasses.replace(meta, next_log_pos=meta.next_log_pos + 1, total_tokens=meta.total_tokens - tokens)
    return new, tokens


def enforce(txn: Any, dbs: Any, meta: StoreMeta, budget: Optional[Budget] = None) -> tuple[StoreMeta, list[Op], int]:
    """Evict the oldest sequences until ``budget`` (default: the stored one) holds.

    Returns (new meta, removal ops in log order, tokens removed); the caller writes meta.
    """
    budget = budget or Budget.of(meta)
    ops: list[Op] = []
    removed_tokens = 0
    if budget.unlimited:
        return meta, ops, 0
    cursor = txn.cursor(db=dbs.sequences)
    while _over(txn, dbs, meta, budget):
        if not cursor.first():
            break
        seq_id = codec.key_u64(cursor.key())
        result = remove_in_txn(txn, dbs, meta, seq_id)
        if result is None:  # cannot happen: the cursor just saw it
            break
        meta, tokens = result
        removed_tokens += tokens
        ops.append((codec.LOG_REMOVE, seq_id, None))
    return meta, ops, removed_tokens


def touch(txn: Any, dbs: Any, meta: StoreMeta, old_key: bytes) -> tuple[StoreMeta, list[Op]]:
    """Move a stored sequence to the back of the eviction queue (a new, highest id)."""
    value = txn.get(old_key, db=dbs.sequences)
    old_id = codec.key_u64(old_key)
    if value is None or old_id == meta.next_seq_id - 1:
        return meta, []  # already last
    tok_bytes, digest, _ = codec.decode_sequence(value)
    new_id, pos = meta.next_seq_id, meta.next_log_pos
    new_key = codec.u64_key(new_id)
    txn.delete(old_key, db=dbs.sequences)
    txn.put(new_key, value, db=dbs.sequences, append=True)
    txn.put(digest, new_key, db=dbs.hashes)
    txn.put(codec.u64_key(pos), codec.encode_log(codec.LOG_REMOVE, old_id), db=dbs.log, append=True)
    txn.put(codec.u64_key(pos + 1), codec.encode_log(codec.LOG_ADD, new_id), db=dbs.log, append=True)
    new = dataclasses.replace(meta, next_seq_id=new_id + 1, next_log_pos=pos + 2)
    tokens = codec.tokens_from_bytes(tok_bytes)
    return new, [(codec.LOG_REMOVE, old_id, None), (codec.LOG_ADD, new_id, tokens)]
