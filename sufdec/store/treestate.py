"""``TreeState``: the suffix tree derived from one store, and the log position it reached.

The tree is never stored as such: it is the snapshot with the log replayed on top, or
(for a repair) a fresh build from the stored sequences. This module owns both ways of
making it, keeps it caught up with log records other processes commit, and drops it
whenever an update fails part-way, so that a tree, when present, always matches exactly
one log position. Every method that reads the databases takes the caller's transaction,
so a caller can load the tree and inspect the store in one consistent view.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from . import _tree, codec, snapshot
from . import meta as meta_mod
from .env import Dbs
from .errors import StoreCorruptError
from .meta import StoreMeta

if TYPE_CHECKING:
    from sufdec.suffix import SuffixIndex

Tick = Callable[[str, int, int], None]
"""``on_progress(phase, done, total)``, as ``verify`` reports it."""


class StaleTree(Exception):
    """The log records the tree needs were folded into a newer snapshot: load it again."""


class TreeState:
    """The loaded SuffixIndex of one store (or none yet), guarded by ``lock``.

    ``lock`` (re-entrant) serialises everything in this process that reads or moves the
    tree, including the store's writes, which mirror what they commit into the tree.
    ``log_pos`` is the next log position the tree has not seen.
    """

    def __init__(self, dbs: Dbs, where: Path) -> None:
        self.lock = threading.RLock()
        self._dbs = dbs
        self._where = where
        self._tree: Any = None
        self._log_pos = 0

    @property
    def tree(self) -> Optional[SuffixIndex]:
        """The tree, or None while it is not loaded."""
        return self._tree

    @property
    def loaded(self) -> bool:
        return self._tree is not None

    @property
    def log_pos(self) -> int:
        return self._log_pos

    def drop(self) -> None:
        """Forget the tree; the next use loads it again."""
        self._tree = None

    # ------------------------------------------------------------ making the tree
    def load(self, txn: Any) -> SuffixIndex:
        """Load the snapshot and replay the log on top, all from ``txn``; returns the tree."""
        meta = meta_mod.read_meta(txn, self._dbs.meta)
        data = snapshot.read_chunks(txn, self._dbs.snapshot, meta, check_digest=False)
        if data is None:
            tree = _tree.new_tree(meta.max_depth)
        else:
            try:
                tree = _tree.load_tree(data)
            except (ValueError, RuntimeError) as exc:
                raise StoreCorruptError(
                    f"the tree snapshot of the store at {self._where} cannot be loaded ({exc}); "
                    "run `sufdec verify --repair`"
                ) from None
        self._log_pos = replay(txn, self._dbs, tree, meta.snapshot_log_pos, meta.next_log_pos)
        self._tree = tree
        return tree

    def rebuild(self, txn: Any) -> SuffixIndex:
        """Build the tree from the stored sequences alone (ignoring snapshot and log)."""
        meta = meta_mod.read_meta(txn, self._dbs.meta)
        self._tree, self._log_pos = build_from_sequences(txn, self._dbs, meta.max_depth), meta.next_log_pos
        return self._tree

    # ------------------------------------------------------------ following the log
    def catch_up(self, txn: Any) -> int:
        """Apply what was committed since the tree was loaded; loads it again if a
        checkpoint folded away records it had not seen. Returns how many records were
        applied (-1 for a reload). The tree must be loaded."""
        try:
            return self.advance(txn, meta_mod.read_meta(txn, self._dbs.meta))
        except StaleTree:
            self.load(txn)
            return -1

    def advance(self, txn: Any, meta: StoreMeta) -> int:
        """Replay the log up to ``meta.next_log_pos``; returns how many records were applied.
        Raises ``StaleTree`` when those records were folded into a newer snapshot."""
        if meta.snapshot_log_pos > self._log_pos:
            raise StaleTree
        start = self._log_pos
        with self.guard():
            self._log_pos = replay(txn, self._dbs, self._tree, start, meta.next_log_pos)
        return self._log_pos - start

    def mirror(self, start: int, end: int, apply: Callable[[Any], None]) -> bool:
        """Mirror a write this process committed (log records ``[start, end)``) with
        ``apply(tree)``. Returns False, changing nothing, when the tree is not at ``start``
        (someone else wrote meanwhile: ``catch_up`` instead). True when no tree is loaded."""
        if self._tree is None:
            return True
        if start != self._log_pos:
            return False
        with self.guard():
            apply(self._tree)
        self._log_pos = end
        return True

    @contextmanager
    def guard(self) -> Iterator[None]:
        """A tree update that fails part-way leaves a tree matching no log position:
        drop it, so the next use reloads it from the snapshot and log."""
        try:
            yield
        except BaseException:
            self._tree = None
            raise


def replay(txn: Any, dbs: Dbs, tree: Any, start: int, end: int) -> int:
    """Apply log records ``[start, end)`` to ``tree``; returns ``end``."""
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
                _add(tree, seq_id, stored)
        else:
            _tree.remove(tree, seq_id)
        expected += 1
    if expected != end:
        raise StoreCorruptError(f"log record {expected} is missing")
    return end


def build_from_sequences(txn: Any, dbs: Dbs, max_depth: int, on_progress: Optional[Tick] = None) -> Any:
    """A fresh tree over every stored sequence (``on_progress("rebuild", done, total)``)."""
    tick = on_progress or (lambda _p, _d, _t: None)
    total = int(txn.stat(dbs.sequences)["entries"]) if on_progress else 0
    tree = _tree.new_tree(max_depth)
    for done, (key, value) in enumerate(txn.cursor(db=dbs.sequences)):
        if done % 256 == 0:
            tick("rebuild", done, total)
        _add(tree, codec.key_u64(key), value)
    tick("rebuild", total, total)
    return tree


def _add(tree: Any, seq_id: int, stored: bytes) -> None:
    """Add a stored sequence to ``tree``; a record the tree cannot take (damaged bytes,
    negative token ids) is a ``StoreCorruptError`` naming it, never a bare ValueError."""
    tok_bytes = codec.decode_sequence(stored)[0]
    try:
        _tree.add(tree, seq_id, codec.tokens_from_bytes(tok_bytes))
    except (ValueError, TypeError, OverflowError) as exc:
        raise StoreCorruptError(
            f"sequence {seq_id} cannot go into the tree ({exc}); run `sufdec verify --repair`"
        ) from None
