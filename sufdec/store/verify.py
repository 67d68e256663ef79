"""Consistency checks over a store (``sufdec verify``) and the repair that rebuilds
everything derived from the stored sequences (``sufdec verify --repair``)."""

from __future__ import annotations

import dataclasses
from typing import Any

from . import codec, snapshot
from . import meta as meta_mod
from .errors import StoreCorruptError
from .store import Store


def verify(store: Store, *, check_tree: bool = True) -> list[str]:
    """Every inconsistency found, one sentence each (empty: the store is sound).

    Checks each sequence against its hash and the hash index, the meta counters, the
    snapshot digest, the log's continuity and (``check_tree``) the loaded tree's counts.
    """
    dbs = store._senv.dbs
    problems: list[str] = []

    def scan(txn: Any) -> tuple[int, int]:
        meta = meta_mod.read_meta(txn, dbs.meta)
        count = tokens = 0
        last = -1
        for key, value in txn.cursor(db=dbs.sequences):
            seq_id = codec.key_u64(key)
            last = seq_id
            try:
                tok_bytes, digest, _ = codec.decode_sequence(value)
            except StoreCorruptError as exc:
                problems.append(f"sequence {seq_id}: {exc}")
                continue
            count += 1
            tokens += len(tok_bytes) // 4
            if len(tok_bytes) % 4 or codec.content_hash(tok_bytes) != digest:
                problems.append(f"sequence {seq_id}: its tokens do not match its content hash")
            if txn.get(digest, db=dbs.hashes) != key:
                problems.append(f"sequence {seq_id}: the hash index does not point back to it")
        hashes = int(txn.stat(dbs.hashes)["entries"])
        if hashes != count:
            problems.append(f"the hash index has {hashes} entries for {count} sequences")
        if tokens != meta.total_tokens:
            problems.append(f"meta counts {meta.total_tokens} tokens, the sequences hold {tokens}")
        if last >= meta.next_seq_id:
            problems.append(f"sequence id {last} is not below meta's next id {meta.next_seq_id}")
        try:
            snapshot.read_chunks(txn, dbs.snapshot, meta)
        except StoreCorruptError as exc:
            problems.append(str(exc))
        positions = [codec.key_u64(k) for k, _ in txn.cursor(db=dbs.log)]
        if positions != list(range(meta.snapshot_log_pos, meta.next_log_pos)):
            problems.append(
                f"the log holds {len(positions)} records, expected positions "
                f"{meta.snapshot_log_pos}..{meta.next_log_pos - 1}"
            )
        return count, tokens

    count, tokens = store._senv.read(scan)
    if check_tree and not problems:
        try:
            store.refresh()
            tree = store.tree
        except StoreCorruptError as exc:
            problems.append(f"the tree cannot be loaded: {exc}")
            return problems
        n_seq, n_tok = len(tree), tree.num_tokens
        if n_seq != count:
            problems.append(f"the tree holds {n_seq} sequences, the store {count}")
        if n_tok != tokens:
            problems.append(f"the tree holds {n_tok} tokens, the store {tokens}")
        try:
            tree.check_integrity()
        except ValueError as exc:
            problems.append(f"the tree fails its integrity check: {exc}")
    return problems


def repair(store: Store) -> None:
    """Rebuild the hash index, meta counters, tree and snapshot from the sequences.

    Sequences that cannot be decoded, or whose tokens do not match their stored hash,
    are kept but re-hashed from their tokens; later duplicates of the same tokens are dropped.
    """
    dbs = store._senv.dbs

    def rewrite(txn: Any) -> None:
        meta = meta_mod.read_meta(txn, dbs.meta)
        txn.drop(dbs.hashes, delete=False)
        tokens = 0
        last = -1
        doomed: list[bytes] = []
        rehashed: list[tuple[bytes, bytes]] = []
        for key, value in txn.cursor(db=dbs.sequences):
            try:
                tok_bytes, digest, source = codec.decode_sequence(value)
            except StoreCorruptError:
                doomed.append(key)
                continue
            actual = codec.content_hash(tok_bytes)
            if len(tok_bytes) % 4 or not tok_bytes or not txn.put(actual, key, db=dbs.hashes, overwrite=False):
                doomed.append(key)  # undecodable, empty, or a duplicate of an earlier sequence
                continue
            if actual != digest:
                rehashed.append((key, codec.encode_sequence(tok_bytes, actual, source)))
            tokens += len(tok_bytes) // 4
            last = codec.key_u64(key)
        for key in doomed:
            txn.delete(key, db=dbs.sequences)
        for key, value in rehashed:
            txn.put(key, value, db=dbs.sequences)
        new = dataclasses.replace(
            meta, total_tokens=tokens, next_seq_id=max(meta.next_seq_id, last + 1)
        )
        meta_mod.write_meta(txn, dbs.meta, new, old=meta)

    with store._lock:
        store._check(write=True)
        store._senv.write(rewrite)
        store.rebuild_tree()
        store.checkpoint(force=True)
