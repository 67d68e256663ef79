"""The store's write transactions, as functions of one LMDB write transaction.

Each function here is the body of exactly one transaction: it reads the meta record,
changes the databases and writes the new meta, and returns what the caller must then
mirror into the in-memory tree. Because ``StoreEnv.write`` may run a body again after
growing a full map, these bodies change only the database, never Python state (the
checkpoint's catch-up of the tree is the one deliberate exception: it replays records
already committed, so running it twice is harmless).

A write of new sequences stores each sequence, its content hash and its log record
together, and evicts under a budget in the same transaction, so a crash either keeps a
sequence whole or never saw it.
"""

from __future__ import annotations

import dataclasses
import time
from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import _tree, codec, snapshot
from . import evict as evict_mod
from . import meta as meta_mod
from .env import Dbs
from .evict import Budget
from .meta import StoreMeta
from .treestate import TreeState


@dataclass
class Prepared:
    """One output ready to store: its tokens, their bytes and hash, and its source."""

    tok: array
    tok_bytes: bytes
    digest: bytes
    source: dict[str, Any]


def prepare(tokens: Sequence[int], source: Mapping[str, Any] | None) -> Prepared:
    """Encode and hash one output (outside any transaction); empty outputs raise ValueError."""
    arr = codec.to_token_array(tokens)
    if len(arr) == 0:
        raise ValueError("cannot store an empty sequence")
    tok_bytes = codec.token_bytes(arr)
    src = dict(source or {})
    src.setdefault("time", time.time())
    return Prepared(arr, tok_bytes, codec.content_hash(tok_bytes), src)


@dataclass(frozen=True)
class Committed:
    """What a write committed: the log records ``[start, meta.next_log_pos)`` and the tree
    operations they stand for, in order."""

    start: int
    meta: StoreMeta
    ops: list[evict_mod.Op]


@dataclass(frozen=True)
class BatchResult(Committed):
    added: list[tuple[int, array]] = dataclasses.field(default_factory=list)
    duplicates: int = 0
    evicted: int = 0
    evicted_tokens: int = 0


def add_batch(txn: Any, dbs: Dbs, batch: list[Prepared]) -> BatchResult:
    """Store a batch (skipping outputs already stored or repeated in it; under ``lru`` a
    repeat moves the stored one to the back), then evict under the budget, even when
    nothing was new (a lowered budget holds after a run of duplicates)."""
    meta = old = meta_mod.read_meta(txn, dbs.meta)
    lru = meta.eviction == "lru"
    added: list[tuple[int, array]] = []
    ops: list[evict_mod.Op] = []
    seen: set[bytes] = set()
    for item in batch:
        if item.digest in seen:
            continue
        seen.add(item.digest)
        existing = txn.get(item.digest, db=dbs.hashes)
        if existing is not None:
            if lru:
                meta, touched = evict_mod.touch(txn, dbs, meta, existing)
                ops += touched
            continue
        seq_id, pos = meta.next_seq_id, meta.next_log_pos
        key = codec.u64_key(seq_id)
        value = codec.encode_sequence(item.tok_bytes, item.digest, item.source)
        txn.put(key, value, db=dbs.sequences, append=True)  # ids only grow
        txn.put(item.digest, key, db=dbs.hashes)
        txn.put(codec.u64_key(pos), codec.encode_log(codec.LOG_ADD, seq_id), db=dbs.log, append=True)
        added.append((seq_id, item.tok))
        ops.append((codec.LOG_ADD, seq_id, item.tok))
        n = len(item.tok)
        meta = dataclasses.replace(
            meta,
            next_seq_id=seq_id + 1,
            next_log_pos=pos + 1,
            total_tokens=meta.total_tokens + n,
            log_tokens=meta.log_tokens + n,
        )
    meta, evicted, evicted_tokens = evict_mod.enforce(txn, dbs, meta)
    ops += evicted
    if meta != old:
        meta_mod.write_meta(txn, dbs.meta, meta, old=old)
    return BatchResult(old.next_log_pos, meta, ops, added, len(batch) - len(added), len(evicted), evicted_tokens)


def remove(txn: Any, dbs: Dbs, seq_id: int) -> Committed | None:
    """Delete one sequence (and its hash) with a log record; None if it is not stored."""
    meta = meta_mod.read_meta(txn, dbs.meta)
    result = evict_mod.remove_in_txn(txn, dbs, meta, seq_id)
    if result is None:
        return None
    meta_mod.write_meta(txn, dbs.meta, result[0], old=meta)
    return Committed(meta.next_log_pos, result[0], [(codec.LOG_REMOVE, seq_id, None)])


def record_budget(txn: Any, dbs: Dbs, budget: Budget) -> None:
    """Record ``budget`` in meta (it is enforced at the next write)."""
    meta = meta_mod.read_meta(txn, dbs.meta)
    new = dataclasses.replace(meta, max_tokens=budget.max_tokens, max_bytes=budget.max_bytes, eviction=budget.eviction)
    meta_mod.write_meta(txn, dbs.meta, new, old=meta)


def evict(txn: Any, dbs: Dbs, budget: Budget | None) -> tuple[Committed, int]:
    """Evict the oldest sequences until ``budget`` (None: the recorded one) holds; also
    returns the tokens evicted."""
    meta = meta_mod.read_meta(txn, dbs.meta)
    new, ops, tokens = evict_mod.enforce(txn, dbs, meta, budget)
    if ops:
        meta_mod.write_meta(txn, dbs.meta, new, old=meta)
    return Committed(meta.next_log_pos, new, ops), tokens


def checkpoint(txn: Any, dbs: Dbs, state: TreeState, chunk_size: int, force: bool) -> None:
    """Bring the loaded tree up to the log's end, write it as the new snapshot and clear
    the log. Does nothing when the log is empty and a snapshot exists, unless ``force``.
    Raises ``StaleTree`` when the tree must be loaded again first."""
    meta = meta_mod.read_meta(txn, dbs.meta)
    state.advance(txn, meta)
    if meta.log_length == 0 and meta.snapshot_chunks > 0 and not force:
        return
    data = state.tree.serialize()
    chunks = snapshot.write_chunks(txn, dbs.snapshot, data, chunk_size, meta.snapshot_chunks)
    txn.drop(dbs.log, delete=False)
    new = dataclasses.replace(
        meta,
        snapshot_log_pos=meta.next_log_pos,
        snapshot_generation=meta.snapshot_generation + 1,
        snapshot_chunks=chunks,
        snapshot_bytes=len(data),
        snapshot_digest=snapshot.digest(data),
        log_tokens=0,
    )
    meta_mod.write_meta(txn, dbs.meta, new, old=meta)


def apply_ops(tree: Any, ops: list[evict_mod.Op]) -> None:
    """Mirror committed operations into a tree, in order."""
    for op, seq_id, tokens in ops:
        if op == codec.LOG_ADD:
            _tree.add(tree, seq_id, tokens)
        else:
            _tree.remove(tree, seq_id)
