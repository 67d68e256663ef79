"""Consistency checks over a store (``sufdec verify``) and the repair that rebuilds
everything derived from the stored sequences (``sufdec verify --repair``).

The one owner of both: ``Store`` does not know this module. It works through the
store's public face only (``read_txn`` / ``write_txn`` / ``dbs`` for whole-database
scans, ``tree_state`` to load the tree inside the scan's transaction, ``rebuild_tree``,
``checkpoint`` and ``exclusive`` for the repair), so verification and the store evolve
separately.

What can be known about lost records: inside the data file, the meta counters, the
sequences, the hash index and the log must agree, and do; a data file that lost
acknowledged records as a whole (an older copy put in its place) agrees with itself
too. The acknowledged mark beside it (``mark``) tells those apart: ids or log positions
acknowledged to a writer that the data file does not reach. Records lost without a
trace in either (an operating-system crash with a disk that ignores fsync) cannot be told.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Optional

from . import codec, mark, snapshot
from . import meta as meta_mod
from .errors import StoreCorruptError, StoreFileDamagedError
from .store import Store
from .treestate import TreeState, build_from_sequences

Progress = Callable[[str, int, int], None]
"""``on_progress(phase, done, total)``: phase is "records" or "rebuild"."""


@dataclass(frozen=True)
class VerifyReport:
    """What ``sufdec verify`` found; ``ok`` when ``problems`` is empty."""

    problems: list[str] = field(default_factory=list)
    sequences: int = 0
    tokens: int = 0
    tree_nodes: Optional[int] = None  # the snapshot + log tree
    rebuilt_nodes: Optional[int] = None  # the tree rebuilt from the sequences

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(store: Store, *, check_tree: bool = True) -> list[str]:
    """Every inconsistency found, one sentence each (empty: the store is sound).

    Checks each sequence against its hash and the hash index, the meta counters, the
    snapshot digest, the log's continuity and (``check_tree``) the loaded tree's counts.
    """
    return verify_report(store, check_tree=check_tree, rebuild=False).problems


def verify_report(
    store: Store, *, check_tree: bool = True, rebuild: bool = True, on_progress: Optional[Progress] = None
) -> VerifyReport:
    """``verify`` plus (``rebuild``) a tree rebuilt from the stored sequences alone,
    compared with the snapshot + log tree: sequences, tokens, nodes and nodes per depth."""
    dbs = store.dbs
    problems: list[str] = []
    tick = on_progress or (lambda _p, _d, _t: None)
    acked = mark.read(store.path)  # before the transaction: a sound store is never behind it

    def scan(txn: Any) -> tuple[int, int]:
        meta = meta_mod.read_meta(txn, dbs.meta)
        count, tokens, last = _scan_sequences(txn, dbs, tick, problems)
        _check_meta_and_log(txn, dbs, meta, acked, (count, tokens, last), problems)
        return count, tokens

    count, tokens = store.read_txn(scan)
    tick("records", count, count)
    report = VerifyReport(problems, count, tokens)
    if not check_tree or problems:
        return report
    state = store.tree_state
    with state.lock:
        try:
            return store.read_txn(lambda txn: _check_tree(state, dbs, txn, report, rebuild, tick))
        except StoreFileDamagedError:
            raise
        except StoreCorruptError as exc:
            problems.append(f"the tree cannot be loaded: {exc}")
            return report


def _scan_sequences(txn: Any, dbs: Any, tick: Progress, problems: list[str]) -> tuple[int, int, int]:
    """Decode every stored sequence and check it against its digest and the hash index:
    (sound sequences, their tokens, the last sequence id seen)."""
    count = tokens = 0
    last = -1
    total = int(txn.stat(dbs.sequences)["entries"])
    for key, value in txn.cursor(db=dbs.sequences):
        if count % 1024 == 0:
            tick("records", count, total)
        if len(key) != codec.KEY_BYTES:
            problems.append(f"a sequence key of {len(key)} bytes ({_shown_key(key)}) is not a sequence id")
            continue
        seq_id = codec.key_u64(key)
        last = seq_id
        try:
            tok_bytes, digest, _ = codec.decode_sequence(value)
        except StoreCorruptError as exc:
            problems.append(f"sequence {seq_id}: {exc}")
            continue
        count += 1
        tokens += len(tok_bytes) // 4
        why = codec.record_problem(tok_bytes, digest)
        if why:
            problems.append(f"sequence {seq_id}: {why}")
        if txn.get(digest, db=dbs.hashes) != key:
            problems.append(f"sequence {seq_id}: the hash index does not point back to it")
    return count, tokens, last


def _check_meta_and_log(
    txn: Any, dbs: Any, meta: Any, acked: Any, scanned: tuple[int, int, int], problems: list[str]
) -> None:
    """The counts in meta, the acknowledged mark, the snapshot and the log positions
    against what the sequence scan found."""
    count, tokens, last = scanned
    hashes = int(txn.stat(dbs.hashes)["entries"])
    if hashes != count:
        problems.append(f"the hash index has {hashes} entries for {count} sequences")
    if tokens != meta.total_tokens:
        problems.append(f"meta counts {meta.total_tokens} tokens, the sequences hold {tokens}")
    if last >= meta.next_seq_id:
        problems.append(f"sequence id {last} is not below meta's next id {meta.next_seq_id}")
    lost = mark.lost(acked, meta)
    if lost:
        problems.append(lost)
    try:
        snapshot.read_chunks(txn, dbs.snapshot, meta)
    except StoreCorruptError as exc:
        problems.append(str(exc))
    keys = [k for k, _ in txn.cursor(db=dbs.log)]
    bad = [k for k in keys if len(k) != codec.KEY_BYTES]
    if bad:
        problems.append(f"the log holds {len(bad)} keys that are no log position (first: {_shown_key(bad[0])})")
    positions = [codec.key_u64(k) for k in keys if len(k) == codec.KEY_BYTES]
    if positions != list(range(meta.snapshot_log_pos, meta.next_log_pos)):
        problems.append(
            f"the log holds {len(positions)} records, expected positions "
            f"{meta.snapshot_log_pos}..{meta.next_log_pos - 1}"
        )


def _check_tree(
    state: TreeState, dbs: Any, txn: Any, report: VerifyReport, rebuild: bool, tick: Progress
) -> VerifyReport:
    """Reload the snapshot + log tree and (``rebuild``) build one from the sequences, both
    in one read transaction, so writers running meanwhile cannot cause false alarms."""
    problems = report.problems
    tree = state.load(txn)
    meta = meta_mod.read_meta(txn, dbs.meta)
    count, tokens = int(txn.stat(dbs.sequences)["entries"]), meta.total_tokens
    report = dataclasses.replace(report, sequences=count, tokens=tokens, tree_nodes=tree.num_nodes)
    if len(tree) != count:
        problems.append(f"the tree holds {len(tree)} sequences, the store {count}")
    if tree.num_tokens != tokens:
        problems.append(f"the tree holds {tree.num_tokens} tokens, the store {tokens}")
    try:
        tree.check_integrity()
    except ValueError as exc:
        problems.append(f"the tree fails its integrity check: {exc}")
    if not rebuild or problems:
        return report
    fresh = build_from_sequences(txn, dbs, meta.max_depth, tick)
    _compare(tree, fresh, problems)
    return dataclasses.replace(report, rebuilt_nodes=fresh.num_nodes)


def _compare(tree: Any, fresh: Any, problems: list[str]) -> None:
    """The same sequences give the same tree whatever the history of adds and removes."""
    a, b = tree.stats(), fresh.stats()
    for key in ("sequences", "tokens", "nodes"):
        if a[key] != b[key]:
            problems.append(f"the snapshot + log tree has {a[key]} {key}, a rebuild from the sequences {b[key]}")
    if list(a["depth_histogram"]) != list(b["depth_histogram"]):
        problems.append("the snapshot + log tree's nodes per depth differ from a rebuild from the sequences")


@dataclass(frozen=True)
class RepairSummary:
    """What ``repair_store`` did: the sequences it dropped (id, or None for a key that is no id;
    reason), and the loss of acknowledged records it accepted (``mark.lost``'s sentence),
    if any."""

    dropped: list[tuple[Optional[int], str]] = field(default_factory=list)
    accepted_loss: Optional[str] = None


def _shown_key(key: bytes) -> str:
    return "0x" + key[:16].hex() + ("..." if len(key) > 16 else "")


def repair_store(store: Store) -> RepairSummary:
    """Rebuild the hash index, meta counters, tree and snapshot from the sequences, and
    drop (with a log record each) every sequence that cannot stand: undecodable, not
    matching its content hash, holding negative token ids, or repeating an earlier one.

    Needs the store to itself (``StoreLockedError`` while another process has it open:
    their trees would keep what the repair drops). Leaves a store that verifies.
    """
    dbs = store.dbs
    acked = mark.read(store.path)
    dropped: list[tuple[Optional[int], str]] = []

    def rewrite(txn: Any) -> meta_mod.StoreMeta:
        dropped.clear()
        meta = meta_mod.read_meta(txn, dbs.meta)
        txn.drop(dbs.hashes, delete=False)
        tokens, last = 0, -1
        first_of: dict[bytes, int] = {}
        strays: list[bytes] = []
        for key, value in txn.cursor(db=dbs.sequences):
            if len(key) != codec.KEY_BYTES:  # no sequence id: no tree or log record can name it
                strays.append(key)
                dropped.append((None, f"its key of {len(key)} bytes ({_shown_key(key)}) is not a sequence id"))
                continue
            seq_id = codec.key_u64(key)
            try:
                tok_bytes, digest, _ = codec.decode_sequence(value)
            except StoreCorruptError:
                dropped.append((seq_id, "it cannot be decoded"))
                continue
            why = codec.record_problem(tok_bytes, digest)
            if why is None and not txn.put(digest, key, db=dbs.hashes, overwrite=False):
                why = f"it repeats sequence {first_of[digest]}"
            if why:
                dropped.append((seq_id, why))
                continue
            first_of[digest] = seq_id
            tokens += len(tok_bytes) // 4
            last = seq_id
        for key in strays:
            txn.delete(key, db=dbs.sequences)
        pos = meta.next_log_pos
        for seq_id, _ in dropped:
            if seq_id is None:
                continue
            txn.delete(codec.u64_key(seq_id), db=dbs.sequences)
            txn.put(codec.u64_key(pos), codec.encode_log(codec.LOG_REMOVE, seq_id), db=dbs.log)
            pos += 1
        new = dataclasses.replace(
            meta, total_tokens=tokens, next_seq_id=max(meta.next_seq_id, last + 1), next_log_pos=pos
        )
        meta_mod.write_meta(txn, dbs.meta, new, old=meta)
        return new

    with store.exclusive("repair"):
        new = store.write_txn(rewrite)
        store.rebuild_tree()
        store.checkpoint(force=True)
    lost = mark.lost(acked, new)
    (mark.reset if lost else mark.advance)(store.path, new)
    return RepairSummary(list(dropped), lost)
