"""``Store``: past outputs in LMDB (the source of truth) plus the suffix tree over them.

Layout (one LMDB environment per directory, named databases, big-endian keys):
``meta`` (format, tokenizer, counters), ``sequences`` (seq id -> int32 tokens + source),
``hashes`` (content hash -> seq id, for dedup), ``snapshot`` (the serialized tree in
chunks) and ``log`` (position -> add/remove seq id, everything since the snapshot).

The tree is derived: it is the snapshot with the log replayed on top, loaded lazily on
first use of ``Store.tree``. Each write is one transaction that stores the sequences,
their hashes and their log records together, so a crash either keeps a sequence whole
or never saw it. ``checkpoint`` folds the log into a fresh snapshot.

This module is the public face and the glue: the checks every call makes (closed,
forked, read-only), then one transaction body from ``writes`` or ``reads``, then the
committed change mirrored into the tree ``treestate`` keeps. Opening lives in
``opening``; consistency checks and repair in ``verify``, which uses only the public
members here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from . import mark, opening, reads, writes
from . import meta as meta_mod
from .config import StoreConfig
from .env import Dbs, StoreEnv
from .errors import ForkedStoreError, StoreError, StoreReadOnlyError
from .evict import Budget, EvictSummary
from .meta import StoreMeta, TokenizerInfo
from .records import AddSummary, SequenceRecord, StoredSequence, StoreStats
from .treestate import StaleTree, TreeState

if TYPE_CHECKING:
    from sufdec.suffix import SuffixIndex

T = TypeVar("T")

__all__ = ["AddSummary", "SequenceRecord", "Store", "StoreConfig", "StoredSequence", "StoreStats"]


_SHARE = "share."  # meta keys of replication state (sufdec.share); the store's own fields never start so


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
        self._state = TreeState(senv.dbs, senv.path)
        self._closed = False

    # ---------------------------------------------------------------- opening
    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        tokenizer: TokenizerInfo | None = None,
        *,
        config: StoreConfig | None = None,
        create: bool = True,
        readonly: bool = False,
    ) -> Store:
        """Open (or create) the store at ``path`` (``~`` expanded; pick it with
        ``resolve_store_path``).

        Refuses a store recorded with another tokenizer fingerprint or a newer format;
        migrates an older format (needs a writable open). ``tokenizer=None`` accepts
        whatever the store records; a store without a recorded tokenizer adopts the given one.
        The tree is not loaded until ``store.tree`` is first used.
        """
        if path is None or str(path) == "":
            raise ValueError("Store.open needs a store path (see sufdec.store.resolve_store_path)")
        cfg = config or StoreConfig()
        senv, readonly = opening.open_env(Path(path).expanduser(), tokenizer, cfg, readonly=readonly, create=create)
        return cls(senv, cfg, readonly)

    # ---------------------------------------------------------------- lifecycle
    def close(self) -> None:
        """Drop the tree and release the environment (idempotent)."""
        with self._state.lock:
            if self._closed:
                return
            self._closed = True
            self._state.drop()
            self._senv.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("read-only" if self.readonly else "writable")
        return f"Store({str(self.path)!r}, {state}, tree {'loaded' if self._state.loaded else 'not loaded'})"

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

    # ---------------------------------------------------------------- raw access
    # For the store's maintenance code (``verify``): whole-database scans and rewrites.
    @property
    def dbs(self) -> Dbs:
        """The named LMDB databases, for use inside ``read_txn`` / ``write_txn``."""
        return self._senv.dbs

    @property
    def tree_state(self) -> TreeState:
        """The tree this store keeps, with the lock that serialises its use and all writes."""
        return self._state

    def read_txn(self, fn: Callable[[Any], T]) -> T:
        """Run ``fn(txn)`` in one read transaction."""
        self._check()
        return self._senv.read(fn)

    def write_txn(self, fn: Callable[[Any], T]) -> T:
        """Run ``fn(txn)`` in one write transaction and commit it; ``fn`` may run again
        after the map grows, so it must change only the database. The loaded tree does
        not follow: call ``rebuild_tree`` or ``refresh`` afterwards as fits."""
        self._check(write=True)
        return self._senv.write(fn)

    @contextmanager
    def exclusive(self, what: str) -> Iterator[Store]:
        """Hold this store for this process alone while the block runs (for maintenance
        that rewrites what other processes' trees hold, such as a repair): raises
        ``StoreLockedError`` at once while another process has it open, and makes sufdec
        opens that start meanwhile wait. ``what`` names the job in that error."""
        with self._state.lock:
            self._check(write=True)
            with self._senv.exclusive(what):
                yield self

    # ---------------------------------------------------------------- the tree
    @property
    def tree(self) -> SuffixIndex:
        """The SuffixIndex over every stored sequence (loaded on first use)."""
        with self._state.lock:
            self._check()
            if not self._state.loaded:
                return self._senv.read(self._state.load)
            return self._state.tree

    @property
    def tree_loaded(self) -> bool:
        return self._state.loaded

    def meta(self) -> StoreMeta:
        """The current meta record (format, tokenizer, counters)."""
        self._check()
        return self._senv.read(lambda txn: meta_mod.read_meta(txn, self._senv.dbs.meta))

    def refresh(self) -> int:
        """Apply what other processes (or Store objects) committed since the tree was
        loaded; reloads if a checkpoint folded away log records it had not seen.
        Returns how many log records were applied (-1 for a reload)."""
        with self._state.lock:
            self._check()
            if not self._state.loaded:
                return 0
            return self._senv.read(self._state.catch_up)

    def rebuild_tree(self) -> SuffixIndex:
        """Rebuild the tree from the stored sequences alone (ignoring snapshot and log);
        ``checkpoint()`` afterwards to persist it. For repairing a damaged snapshot."""
        with self._state.lock:
            self._check()
            return self._senv.read(self._state.rebuild)

    def _mirror(self, done: writes.Committed) -> None:
        """Mirror a committed write into the loaded tree, or catch up if others wrote too."""
        if not self._state.mirror(done.start, done.meta.next_log_pos, lambda tree: writes.apply_ops(tree, done.ops)):
            self._senv.read(self._state.catch_up)

    def _maybe_checkpoint(self, meta: StoreMeta) -> None:
        if not self._state.loaded:
            return
        if meta.log_length >= self.config.checkpoint_records or meta.log_tokens >= self.config.checkpoint_tokens:
            self.checkpoint()

    # ---------------------------------------------------------------- writing
    def append(self, tokens: Sequence[int], source: Mapping[str, Any] | None = None) -> int | None:
        """Store one finished output in one small transaction and extend the tree.

        Returns the new sequence id, or None when the same tokens are already stored.
        """
        prepared = writes.prepare(tokens, source)
        with self._state.lock:
            self._check(write=True)
            added = self._commit([prepared]).added
        return added[0][0] if added else None

    def add_many(self, records: Iterable[SequenceRecord], *, auto_checkpoint: bool = True) -> AddSummary:
        """Store many outputs, a few thousand per transaction; duplicates (same token
        ids, stored or earlier in ``records``) are skipped. Empty sequences raise ValueError.
        A ``StoreError`` in a later transaction carries what the earlier ones committed
        (``exc.partial``, an ``AddSummary``): they stay."""
        total = AddSummary()
        batch: list[writes.Prepared] = []
        batch_tokens = 0
        with self._state.lock:
            self._check(write=True)
            try:
                for record in records:
                    prepared = writes.prepare(record.tokens, record.source)
                    batch.append(prepared)
                    batch_tokens += len(prepared.tok)
                    if len(batch) >= self.config.txn_records or batch_tokens >= self.config.txn_tokens:
                        total += self._commit_summary(batch, auto_checkpoint)
                        batch, batch_tokens = [], 0
                if batch:
                    total += self._commit_summary(batch, auto_checkpoint)
            except StoreError as exc:
                exc.partial = total  # type: ignore[attr-defined]
                raise
        return total

    def _commit_summary(self, batch: list[writes.Prepared], auto_checkpoint: bool) -> AddSummary:
        result = self._commit(batch, auto_checkpoint)
        tokens = sum(len(tok) for _, tok in result.added)
        return AddSummary(len(result.added), result.duplicates, tokens, 1, result.evicted, result.evicted_tokens)

    def _commit(self, batch: list[writes.Prepared], auto_checkpoint: bool = True) -> writes.BatchResult:
        """Store a batch in one transaction (evicting under a budget), then mirror it."""
        result = self._senv.write(lambda txn: writes.add_batch(txn, self._senv.dbs, batch))
        if result.ops:
            mark.advance(self.path, result.meta)
            self._mirror(result)
            if auto_checkpoint:
                self._maybe_checkpoint(result.meta)
        return result

    def remove(self, seq_id: int) -> bool:
        """Delete a stored sequence (and its hash) and drop it from the tree."""
        with self._state.lock:
            self._check(write=True)
            done = self._senv.write(lambda txn: writes.remove(txn, self._senv.dbs, seq_id))
            if done is None:
                return False
            mark.advance(self.path, done.meta)
            self._mirror(done)
            return True

    # ---------------------------------------------------------------- budget
    @property
    def budget(self) -> Budget:
        """The budget this store keeps (recorded in meta; 0 = unlimited)."""
        return Budget.of(self.meta())

    def set_budget(self, budget: Budget) -> None:
        """Record a new budget; it is enforced at the next write (or ``evict()``)."""
        with self._state.lock:
            self._check(write=True)
            self._senv.write(lambda txn: writes.record_budget(txn, self._senv.dbs, budget))

    def evict(self, budget: Budget | None = None) -> EvictSummary:
        """Evict the oldest sequences until ``budget`` (default: the recorded one) holds,
        in one write transaction; the recorded budget is left as it is."""
        with self._state.lock:
            self._check(write=True)
            done, tokens = self._senv.write(lambda txn: writes.evict(txn, self._senv.dbs, budget))
            if done.ops:
                mark.advance(self.path, done.meta)
                self._mirror(done)
                self._maybe_checkpoint(done.meta)
            return EvictSummary(len(done.ops), tokens, tuple(seq_id for _, seq_id, _ in done.ops))

    def checkpoint(self, *, force: bool = False) -> None:
        """Write the tree as the new snapshot and clear the log, in one transaction.

        Loads the tree if needed and first applies anything other processes committed.
        Does nothing when the log is empty and a snapshot exists, unless ``force``.
        """
        dbs, chunk_size = self._senv.dbs, self.config.snapshot_chunk_size
        with self._state.lock:
            self._check(write=True)
            for _ in range(5):
                self.tree  # (re)load it if needed
                try:
                    self._senv.write(lambda txn: writes.checkpoint(txn, dbs, self._state, chunk_size, force))
                    return
                except StaleTree:
                    self._senv.read(self._state.catch_up)
            raise StoreError(f"the store at {self.path} kept changing under a checkpoint; try again")

    # ---------------------------------------------------------------- replication state
    def share_state(self) -> dict[str, Any]:
        """What replication keeps in the store (``sufdec.share``: this store's host id and
        its cursors per shared database), as meta keys under ``share.``."""
        self._check()
        raw = self._senv.read(lambda txn: meta_mod.read_raw(txn, self._senv.dbs.meta))
        return {k[len(_SHARE) :]: v for k, v in raw.items() if k.startswith(_SHARE)}

    def set_share_state(self, values: Mapping[str, Any]) -> None:
        """Set replication state (msgpack-able values) in one small transaction."""
        keyed = {_SHARE + k: v for k, v in values.items()}
        with self._state.lock:
            self._check(write=True)
            self._senv.write(lambda txn: meta_mod.write_raw(txn, self._senv.dbs.meta, keyed))

    # ---------------------------------------------------------------- reading
    def get(self, seq_id: int) -> StoredSequence | None:
        """One stored sequence, or None."""
        self._check()
        return self._senv.read(lambda txn: reads.get(txn, self._senv.dbs, seq_id))

    def find(self, tokens: Sequence[int]) -> int | None:
        """The id of the stored sequence with exactly these tokens, or None."""
        self._check()
        return self._senv.read(lambda txn: reads.find(txn, self._senv.dbs, tokens))

    def iter_sequences(self, start: int = 0, *, batch: int = 1024) -> Iterator[StoredSequence]:
        """Every stored sequence with id >= ``start``, in id order, read ``batch`` at a
        time in short transactions (so iterating never holds a reader for long)."""
        self._check()
        dbs = self._senv.dbs
        next_id = start
        while True:
            chunk = self._senv.read(lambda txn: reads.page(txn, dbs, next_id, batch))
            if not chunk:
                return
            yield from chunk
            next_id = chunk[-1].seq_id + 1

    def __len__(self) -> int:
        self._check()
        return self._senv.read(lambda txn: reads.count(txn, self._senv.dbs))

    def stats(self) -> StoreStats:
        """Counts and sizes for ``sufdec stats`` (does not load the tree)."""
        self._check()
        return reads.stats(self._senv)
