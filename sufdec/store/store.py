"""``Store``: past outputs in LMDB (the source of truth) plus the suffix tree over them.

Layout (one LMDB environment per directory, named databases, big-endian keys):
``meta`` (format, tokenizer, counters), ``sequences`` (seq id -> int32 tokens + source),
``hashes`` (content hash -> seq id, for dedup), ``snapshot`` (the serialized tree in
chunks) and ``log`` (position -> add/remove seq id, everything since the snapshot).

The tree is derived: it is the snapshot with the log replayed on top, loaded lazily on
first use of ``Store.tree``. Each write is one transaction that stores the sequences,
their hashes and their log records together, so a crash either keeps a sequence whole
or never saw it. ``checkpoint`` folds the log into a fresh snapshot.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import _tree, codec
from . import evict as evict_mod
from . import meta as meta_mod
from . import migrations, snapshot
from .evict import Budget, EvictSummary
from .env import DATA_FILE, LOCK_FILE, MapLimits, StoreEnv, acquire, default_store_path
from .errors import (
    ForkedStoreError,
    MigrationRequiredError,
    NotAStoreError,
    StoreCorruptError,
    StoreError,
    StoreReadOnlyError,
)
from .meta import StoreMeta, TokenizerInfo

if TYPE_CHECKING:
    from sufdec.suffix import SuffixIndex


@dataclass(frozen=True)
class StoreConfig:
    """How a store is opened and maintained.

    ``max_depth`` only applies when the store is created (the tree's depth is recorded).
    ``max_tokens`` / ``max_bytes`` / ``eviction``: the budget (see ``evict.Budget``; 0 =
    unlimited); None keeps what the store records, a value is recorded by a writable open
    and kept by later opens. ``open_wait_s``: how long an open waits for a running
    ``compact`` before giving up.
    A checkpoint runs after a write once the log holds ``checkpoint_records`` records or
    ``checkpoint_tokens`` tokens (only while the tree is loaded). ``add_many`` commits
    at most ``txn_records`` records / ``txn_tokens`` tokens per transaction.
    """

    max_depth: int = 64
    map: MapLimits = MapLimits()
    checkpoint_records: int = 10_000
    checkpoint_tokens: int = 2_000_000
    snapshot_chunk_size: int = 4 << 20
    txn_records: int = 4096
    txn_tokens: int = 4_000_000
    max_tokens: int | None = None
    max_bytes: int | None = None
    eviction: str | None = None
    open_wait_s: float = 30.0

    def budget_over(self, recorded: Budget) -> Budget:
        """``recorded`` with the limits this config names put over it."""
        return Budget(
            recorded.max_tokens if self.max_tokens is None else self.max_tokens,
            recorded.max_bytes if self.max_bytes is None else self.max_bytes,
            recorded.eviction if self.eviction is None else self.eviction,
        )


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


@dataclass(frozen=True)
class AddSummary:
    added: int = 0
    duplicates: int = 0
    tokens_added: int = 0
    transactions: int = 0

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
    max_tokens: int = 0      # the budget (0 = unlimited)
    max_bytes: int = 0
    eviction: str = "fifo"


class _Stale(Exception):
    """The log this process needs was folded into a newer snapshot: reload first."""


@dataclass
class _Prepared:
    tok: array
    tok_bytes: bytes
    digest: bytes
    source: dict[str, Any]


def _prepare(tokens: Sequence[int], source: Mapping[str, Any] | None) -> _Prepared:
    arr = codec.to_token_array(tokens)
    if len(arr) == 0:
        raise ValueError("cannot store an empty sequence")
    tok_bytes = codec.token_bytes(arr)
    src = dict(source or {})
    src.setdefault("time", time.time())
    return _Prepared(arr, tok_bytes, codec.content_hash(tok_bytes), src)


class Store:
    """An open store. Use ``Store.open``; close it (or use ``with``) when done.

    Reach the tree through ``store.tree`` each time: ``refresh`` may replace the object.
    A Store is safe to share between threads of one process, not across ``fork``.
    """

    def __init__(self, senv: StoreEnv, config: StoreConfig, readonly: bool) -> None:
        self._senv = senv
        self.config = config
        self.readonly = readonly
        self.path: Path = senv.path
        self._lock = threading.RLock()
        self._tree: Any = None
        self._log_pos = 0  # next log position the in-memory tree has not seen
        self._closed = False

    # ---------------------------------------------------------------- opening
    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str] | None = None,
        tokenizer: TokenizerInfo | None = None,
        *,
        config: StoreConfig | None = None,
        create: bool = True,
        readonly: bool = False,
    ) -> Store:
        """Open (or create) the store at ``path`` (None: ``default_store_path()``).

        Refuses a store recorded with another tokenizer fingerprint or a newer format;
        migrates an older format (needs a writable open). ``tokenizer=None`` accepts
        whatever the store records; a store without a recorded tokenizer adopts the given one.
        The tree is not loaded until ``store.tree`` is first used.
        """
        cfg = config or StoreConfig()
        where = default_store_path(path)
        Budget(cfg.max_tokens or 0, cfg.max_bytes or 0, cfg.eviction or "fifo")  # validate early
        senv = acquire(where, cfg.map, readonly=readonly, create=create, wait_s=cfg.open_wait_s)
        if senv is None or (senv.readonly and _uninitialised(senv)):
            # A process killed while creating the store leaves an environment with no sufdec
            # databases or no meta yet: that is an empty store. Finish creating it with one
            # writable open (nothing else is in it), then open it as asked.
            if senv is not None:
                senv.close()
            if not _interrupted_creation(where):
                raise NotAStoreError(f"{where} holds an LMDB environment that is not a sufdec store")
            cls.open(where, None, config=cfg, create=False, readonly=False).close()
            senv = acquire(where, cfg.map, readonly=readonly, create=create, wait_s=cfg.open_wait_s)
            if senv is None:
                raise NotAStoreError(f"{where} holds an LMDB environment that is not a sufdec store")
        try:
            store = cls(senv, cfg, readonly or senv.readonly)
            store._init_meta(tokenizer)
        except BaseException:
            senv.close()
            raise
        return store

    def _init_meta(self, tokenizer: TokenizerInfo | None) -> None:
        """Check (and if needed create, migrate or complete) the meta record."""
        dbs, where, cfg = self._senv.dbs, str(self.path), self.config
        needs = self._senv.read(lambda txn: _meta_needs_write(txn, dbs, tokenizer, where, cfg))
        if not needs:
            return
        if not self.readonly:
            self._senv.write(lambda txn: _setup_meta(txn, dbs, tokenizer, cfg, where))
            return
        if needs == "budget":
            return  # a read-only open never writes, and never evicts either
        raw = self._senv.read(lambda txn: meta_mod.read_raw(txn, dbs.meta))
        if not raw:
            raise NotAStoreError(f"the store at {where} was never initialised")
        if int(raw["format_version"]) < meta_mod.FORMAT_VERSION:
            raise MigrationRequiredError(
                f"the store at {where} has format {raw['format_version']}; open it writable once to migrate it"
            )
        # else only a tokenizer to record, which a read-only open skips

    # ---------------------------------------------------------------- lifecycle
    def close(self) -> None:
        """Drop the tree and release the environment (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._tree = None
            self._senv.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("read-only" if self.readonly else "writable")
        return f"Store({str(self.path)!r}, {state}, tree {'loaded' if self._tree is not None else 'not loaded'})"

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check(self, write: bool = False) -> None:
        if self._closed:
            raise StoreError(f"the store at {self.path} is closed")
        if os.getpid() != self._senv.pid:
            raise ForkedStoreError(
                f"the store at {self.path} was opened before this process forked; "
                "open stores only after worker processes start"
            )
        if write and self.readonly:
            raise StoreReadOnlyError(f"the store at {self.path} is open read-only")

    # ---------------------------------------------------------------- the tree
    @property
    def tree(self) -> SuffixIndex:
        """The SuffixIndex over every stored sequence (loaded on first use)."""
        with self._lock:
            self._check()
            if self._tree is None:
                self._senv.read(self._load_tree)
            return self._tree

    @property
    def tree_loaded(self) -> bool:
        return self._tree is not None

    def meta(self) -> StoreMeta:
        """The current meta record (format, tokenizer, counters)."""
        self._check()
        return self._senv.read(self._read_meta)

    def _read_meta(self, txn: Any) -> StoreMeta:
        return meta_mod.read_meta(txn, self._senv.dbs.meta)

    def _load_tree(self, txn: Any) -> None:
        """Snapshot + log replay, all from one transaction."""
        meta = self._read_meta(txn)
        data = snapshot.read_chunks(txn, self._senv.dbs.snapshot, meta, check_digest=False)
        if data is None:
            tree = _tree.new_tree(meta.max_depth)
        else:
            try:
                tree = _tree.load_tree(data)
            except (ValueError, RuntimeError) as exc:
                raise StoreCorruptError(
                    f"the tree snapshot of the store at {self.path} cannot be loaded ({exc}); "
                    "run `sufdec verify --repair`"
                ) from None
        self._log_pos = self._replay(txn, tree, meta.snapshot_log_pos, meta.next_log_pos)
        self._tree = tree

    def _replay(self, txn: Any, tree: Any, start: int, end: int) -> int:
        """Apply log records ``[start, end)`` to ``tree``; returns ``end``."""
        dbs = self._senv.dbs
        if start >= end:
            return end
        cursor = txn.cursor(db=dbs.log)
        if not cursor.set_key(codec.u64_key(start)):
            raise StoreCorruptError(f"log record {start} is missing")
        expected = start
        for key, value in cursor:
            pos = codec.key_u64(key)
            if pos >= end:
                break
            if pos != expected:
                raise StoreCorruptError(f"log record {expected} is missing")
            op, seq_id = codec.decode_log(value)
            if op == codec.LOG_ADD:
                stored = txn.get(codec.u64_key(seq_id), db=dbs.sequences)
                if stored is not None:  # absent: removed later in the log
                    _tree.add(tree, seq_id, codec.tokens_from_bytes(codec.decode_sequence(stored)[0]))
            else:
                _tree.remove(tree, seq_id)
            expected += 1
        if expected != end:
            raise StoreCorruptError(f"log record {expected} is missing")
        return end

    def refresh(self) -> int:
        """Apply what other processes (or Store objects) committed since the tree was
        loaded; reloads if a checkpoint folded away log records it had not seen.
        Returns how many log records were applied (-1 for a reload)."""
        with self._lock:
            self._check()
            if self._tree is None:
                return 0
            return self._senv.read(self._catch_up)

    def _catch_up(self, txn: Any) -> int:
        meta = self._read_meta(txn)
        if meta.snapshot_log_pos > self._log_pos:
            self._load_tree(txn)
            return -1
        start = self._log_pos
        with self._tree_guard():
            self._log_pos = self._replay(txn, self._tree, start, meta.next_log_pos)
        return self._log_pos - start

    @contextmanager
    def _tree_guard(self) -> Iterator[None]:
        """A tree update that fails part-way leaves a tree matching no log position:
        drop it, so the next use reloads it from the snapshot and log."""
        try:
            yield
        except BaseException:
            self._tree = None
            raise

    def rebuild_tree(self) -> SuffixIndex:
        """Rebuild the tree from the stored sequences alone (ignoring snapshot and log);
        ``checkpoint()`` afterwards to persist it. For repairing a damaged snapshot."""
        with self._lock:
            self._check()

            def build(txn: Any) -> None:
                meta = self._read_meta(txn)
                tree = _tree.new_tree(meta.max_depth)
                for key, value in txn.cursor(db=self._senv.dbs.sequences):
                    tok = codec.tokens_from_bytes(codec.decode_sequence(value)[0])
                    _tree.add(tree, codec.key_u64(key), tok)
                self._tree, self._log_pos = tree, meta.next_log_pos

            self._senv.read(build)
            return self._tree

    # ---------------------------------------------------------------- writing
    def append(self, tokens: Sequence[int], source: Mapping[str, Any] | None = None) -> int | None:
        """Store one finished output in one small transaction and extend the tree.

        Returns the new sequence id, or None when the same tokens are already stored.
        """
        prepared = _prepare(tokens, source)
        with self._lock:
            self._check(write=True)
            added, _ = self._commit([prepared])
        return added[0][0] if added else None

    def add_many(self, records: Iterable[SequenceRecord], *, auto_checkpoint: bool = True) -> AddSummary:
        """Store many outputs, a few thousand per transaction; duplicates (same token
        ids, stored or earlier in ``records``) are skipped. Empty sequences raise ValueError."""
        total = AddSummary()
        batch: list[_Prepared] = []
        batch_tokens = 0
        with self._lock:
            self._check(write=True)
            for record in records:
                prepared = _prepare(record.tokens, record.source)
                batch.append(prepared)
                batch_tokens += len(prepared.tok)
                if len(batch) >= self.config.txn_records or batch_tokens >= self.config.txn_tokens:
                    total += self._commit_summary(batch, auto_checkpoint)
                    batch, batch_tokens = [], 0
            if batch:
                total += self._commit_summary(batch, auto_checkpoint)
        return total

    def _commit_summary(self, batch: list[_Prepared], auto_checkpoint: bool) -> AddSummary:
        added, duplicates = self._commit(batch, auto_checkpoint)
        return AddSummary(len(added), duplicates, sum(len(tok) for _, tok in added), 1)

    def _commit(
        self, batch: list[_Prepared], auto_checkpoint: bool = True
    ) -> tuple[list[tuple[int, array]], int]:
        """Store a batch in one transaction; under a budget, evict in the same transaction."""
        dbs = self._senv.dbs

        def write(txn: Any) -> tuple[list[tuple[int, array]], int, int, StoreMeta, list[evict_mod.Op]]:
            meta = old = self._read_meta(txn)
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
                    meta, next_seq_id=seq_id + 1, next_log_pos=pos + 1,
                    total_tokens=meta.total_tokens + n, log_tokens=meta.log_tokens + n,
                )
            if added:
                meta, evicted, _ = evict_mod.enforce(txn, dbs, meta)
                ops += evicted
            if meta != old:
                meta_mod.write_meta(txn, dbs.meta, meta, old=old)
            return added, len(batch) - len(added), old.next_log_pos, meta, ops

        added, duplicates, start, new_meta, ops = self._senv.write(write)
        if ops:
            self._after_write(start, new_meta, lambda tree: _apply_ops(tree, ops))
            if auto_checkpoint:
                self._maybe_checkpoint(new_meta)
        return added, duplicates

    def _after_write(self, start: int, meta: StoreMeta, apply: Any) -> None:
        """Mirror a committed write into the loaded tree, or catch up if others wrote too."""
        if self._tree is None:
            return
        if start == self._log_pos:
            with self._tree_guard():
                apply(self._tree)
            self._log_pos = meta.next_log_pos
        else:
            self._senv.read(self._catch_up)

    def _maybe_checkpoint(self, meta: StoreMeta) -> None:
        if self._tree is None:
            return
        if meta.log_length >= self.config.checkpoint_records or meta.log_tokens >= self.config.checkpoint_tokens:
            self.checkpoint()

    def remove(self, seq_id: int) -> bool:
        """Delete a stored sequence (and its hash) and drop it from the tree."""
        dbs = self._senv.dbs
        with self._lock:
            self._check(write=True)

            def write(txn: Any) -> tuple[int, StoreMeta] | None:
                meta = self._read_meta(txn)
                result = evict_mod.remove_in_txn(txn, dbs, meta, seq_id)
                if result is None:
                    return None
                meta_mod.write_meta(txn, dbs.meta, result[0], old=meta)
                return meta.next_log_pos, result[0]

            result = self._senv.write(write)
            if result is None:
                return False
            self._after_write(result[0], result[1], lambda tree: _tree.remove(tree, seq_id))
            return True

    # ---------------------------------------------------------------- budget
    @property
    def budget(self) -> Budget:
        """The budget this store keeps (recorded in meta; 0 = unlimited)."""
        return Budget.of(self.meta())

    def set_budget(self, budget: Budget) -> None:
        """Record a new budget; it is enforced at the next write (or ``evict()``)."""
        dbs = self._senv.dbs
        with self._lock:
            self._check(write=True)

            def write(txn: Any) -> None:
                meta = self._read_meta(txn)
                new = dataclasses.replace(
                    meta, max_tokens=budget.max_tokens, max_bytes=budget.max_bytes, eviction=budget.eviction
                )
                meta_mod.write_meta(txn, dbs.meta, new, old=meta)

            self._senv.write(write)

    def evict(self, budget: Budget | None = None) -> EvictSummary:
        """Evict the oldest sequences until ``budget`` (default: the recorded one) holds,
        in one write transaction; the recorded budget is left as it is."""
        dbs = self._senv.dbs
        with self._lock:
            self._check(write=True)

            def write(txn: Any) -> tuple[int, StoreMeta, list[evict_mod.Op], int]:
                meta = self._read_meta(txn)
                new, ops, tokens = evict_mod.enforce(txn, dbs, meta, budget)
                if ops:
                    meta_mod.write_meta(txn, dbs.meta, new, old=meta)
                return meta.next_log_pos, new, ops, tokens

            start, new, ops, tokens = self._senv.write(write)
            if ops:
                self._after_write(start, new, lambda tree: _apply_ops(tree, ops))
                self._maybe_checkpoint(new)
            return EvictSummary(len(ops), tokens, tuple(seq_id for _, seq_id, _ in ops))

    def checkpoint(self, *, force: bool = False) -> None:
        """Write the tree as the new snapshot and clear the log, in one transaction.

        Loads the tree if needed and first applies anything other processes committed.
        Does nothing when the log is empty and a snapshot exists, unless ``force``.
        """
        dbs = self._senv.dbs
        with self._lock:
            self._check(write=True)

            def write(txn: Any) -> None:
                meta = self._read_meta(txn)
                if meta.snapshot_log_pos > self._log_pos:
                    raise _Stale
                with self._tree_guard():
                    self._log_pos = self._replay(txn, self._tree, self._log_pos, meta.next_log_pos)
                if meta.log_length == 0 and meta.snapshot_chunks > 0 and not force:
                    return
                data = self._tree.serialize()
                chunks = snapshot.write_chunks(txn, dbs.snapshot, data, self.config.snapshot_chunk_size, meta.snapshot_chunks)
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

            for _ in range(5):
                self.tree  # (re)load it if needed
                try:
                    self._senv.write(write)
                    return
                except _Stale:
                    self._senv.read(self._catch_up)
            raise StoreError(f"the store at {self.path} kept changing under a checkpoint; try again")

    # ---------------------------------------------------------------- reading
    def get(self, seq_id: int) -> StoredSequence | None:
        """One stored sequence, or None."""
        self._check()
        db = self._senv.dbs.sequences

        def read(txn: Any) -> StoredSequence | None:
            value = txn.get(codec.u64_key(seq_id), db=db)
            return None if value is None else _stored(seq_id, value)

        return self._senv.read(read)

    def find(self, tokens: Sequence[int]) -> int | None:
        """The id of the stored sequence with exactly these tokens, or None."""
        self._check()
        digest = codec.content_hash(codec.token_bytes(codec.to_token_array(tokens)))
        value = self._senv.read(lambda txn: txn.get(digest, db=self._senv.dbs.hashes))
        return None if value is None else codec.key_u64(value)

    def iter_sequences(self, start: int = 0, *, batch: int = 1024) -> Iterator[StoredSequence]:
        """Every stored sequence with id >= ``start``, in id order, read ``batch`` at a
        time in short transactions (so iterating never holds a reader for long)."""
        self._check()
        db = self._senv.dbs.sequences
        next_id = start
        while True:
            def read(txn: Any) -> list[StoredSequence]:
                cursor = txn.cursor(db=db)
                out: list[StoredSequence] = []
                if not cursor.set_range(codec.u64_key(next_id)):
                    return out
                for key, value in cursor:
                    out.append(_stored(codec.key_u64(key), value))
                    if len(out) >= batch:
                        break
                return out

            chunk = self._senv.read(read)
            if not chunk:
                return
            yield from chunk
            next_id = chunk[-1].seq_id + 1

    def __len__(self) -> int:
        self._check()
        return int(self._senv.read(lambda txn: txn.stat(self._senv.dbs.sequences)["entries"]))

    def verify(self, *, check_tree: bool = True) -> list[str]:
        """Every inconsistency found, one sentence each; empty when the store is sound."""
        from .verify import verify

        return verify(self, check_tree=check_tree)

    def repair(self) -> None:
        """Rebuild the hash index, counters, tree and snapshot from the stored sequences."""
        from .verify import repair

        repair(self)

    def stats(self) -> StoreStats:
        """Counts and sizes for ``sufdec stats`` (does not load the tree)."""
        self._check()
        dbs = self._senv.dbs

        def read(txn: Any) -> tuple[StoreMeta, int, dict[str, int], int]:
            meta, entries = self._read_meta(txn), int(txn.stat(dbs.sequences)["entries"])
            return meta, entries, self._senv.env.info(), int(txn.stat(dbs.meta)["psize"])

        meta, sequences, info, page_size = self._senv.read(read)
        disk = sum((self.path / name).stat().st_size for name in (DATA_FILE, LOCK_FILE) if (self.path / name).exists())
        return StoreStats(
            path=str(self.path),
            sequences=sequences,
            tokens=meta.total_tokens,
            disk_bytes=disk,
            map_size=int(info["map_size"]),
            used_bytes=(int(info["last_pgno"]) + 1) * page_size,
            page_size=page_size,
            tokenizer_name=meta.tokenizer_name,
            tokenizer_fingerprint=meta.tokenizer_fingerprint,
            format_version=meta.format_version,
            created=meta.created,
            max_depth=meta.max_depth,
            log_length=meta.log_length,
            log_tokens=meta.log_tokens,
            snapshot_bytes=meta.snapshot_bytes,
            snapshot_log_pos=meta.snapshot_log_pos,
            max_tokens=meta.max_tokens,
            max_bytes=meta.max_bytes,
            eviction=meta.eviction,
        )


def _meta_needs_write(
    txn: Any, dbs: Any, tokenizer: TokenizerInfo | None, where: str, cfg: StoreConfig
) -> bool | str:
    """Refuse a foreign, too new or other-tokenizer store; truthy if meta must be written
    (``"budget"`` when only the budget the config names differs from the recorded one)."""
    if not meta_mod.read_raw(txn, dbs.meta):
        return True
    meta = meta_mod.read_meta(txn, dbs.meta)
    meta_mod.check_version(meta.format_version, where)
    if meta.format_version < meta_mod.FORMAT_VERSION:
        return True
    meta_mod.check_tokenizer(meta, tokenizer, where)
    if tokenizer is not None and meta.tokenizer is None:
        return True
    return "budget" if cfg.budget_over(Budget.of(meta)) != Budget.of(meta) else False


def _setup_meta(txn: Any, dbs: Any, tokenizer: TokenizerInfo | None, cfg: StoreConfig, where: str) -> None:
    """Create the meta record, or migrate it, record a first tokenizer and the budget the
    config names (one write txn). The budget is enforced at the next write."""
    raw = meta_mod.read_raw(txn, dbs.meta)
    if not raw:
        meta = meta_mod.initial_meta(tokenizer, cfg.max_depth)
        budget = cfg.budget_over(Budget.of(meta))
        meta = dataclasses.replace(meta, max_tokens=budget.max_tokens, max_bytes=budget.max_bytes, eviction=budget.eviction)
        meta_mod.write_meta(txn, dbs.meta, meta)
        return
    if raw.get("magic") != meta_mod.FORMAT_MAGIC:
        raise NotAStoreError(f"{where} is not a sufdec store (no format magic)")
    meta_mod.check_version(int(raw["format_version"]), where)
    if int(raw["format_version"]) < meta_mod.FORMAT_VERSION:
        migrations.migrate(txn, dbs, raw, meta_mod.FORMAT_VERSION)
        meta_mod.write_raw(txn, dbs.meta, raw)
    meta = meta_mod.read_meta(txn, dbs.meta)
    meta_mod.check_tokenizer(meta, tokenizer, where)
    new = meta
    if tokenizer is not None and meta.tokenizer is None:
        new = dataclasses.replace(new, tokenizer_name=tokenizer.name, tokenizer_fingerprint=tokenizer.fingerprint)
    budget = cfg.budget_over(Budget.of(meta))
    new = dataclasses.replace(new, max_tokens=budget.max_tokens, max_bytes=budget.max_bytes, eviction=budget.eviction)
    meta_mod.write_meta(txn, dbs.meta, new, old=meta)


def _apply_ops(tree: Any, ops: list[evict_mod.Op]) -> None:
    for op, seq_id, tokens in ops:
        if op == codec.LOG_ADD:
            _tree.add(tree, seq_id, tokens)
        else:
            _tree.remove(tree, seq_id)


def _uninitialised(senv: StoreEnv) -> bool:
    """True when the sufdec databases exist but the meta record was never written."""
    return not senv.read(lambda txn: meta_mod.read_raw(txn, senv.dbs.meta))


def _interrupted_creation(path: Path) -> bool:
    """True when the LMDB environment at ``path`` holds nothing but (some of) sufdec's empty
    databases and no meta: what a kill during ``Store.open``'s first creation leaves."""
    import lmdb

    from .env import DB_NAMES

    env = lmdb.open(str(path), readonly=True, lock=False, max_dbs=len(DB_NAMES) + 1, subdir=True)
    try:
        with env.begin() as txn:
            names = [bytes(k).decode("utf-8", "replace") for k, _ in txn.cursor()]
            if any(n not in DB_NAMES for n in names):
                return False
            for n in names:
                db = env.open_db(n.encode(), txn=txn, create=False)
                if txn.stat(db)["entries"]:
                    return False
        return True
    finally:
        env.close()


def _stored(seq_id: int, value: bytes) -> StoredSequence:
    tok_bytes, digest, source = codec.decode_sequence(value)
    return StoredSequence(seq_id, codec.tokens_from_bytes(tok_bytes).tolist(), digest, source)
