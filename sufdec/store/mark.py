"""The acknowledged mark: how far this store's ids and log positions have ever been
acknowledged to a writer, kept beside the data file in ``sufdec.acked``.

Why outside the data file: a data file can lose acknowledged records and still agree
with itself in every way ``verify`` can check (an older copy restored over it, a file
swapped under a writer that went on writing into the old one). Inside it, the meta
counters, the sequences and the log then tell the same, smaller story. The two counters
that only ever grow (``next_seq_id``, ``next_log_pos``: compaction copies them, repair
and eviction never lower them) are recorded here after each commit, so ``verify`` can
say "records up to id N were acknowledged and are not here".

Sound by construction: the mark is written after the commit it describes, so a reader
that reads the mark before its own read transaction never sees a mark ahead of a sound
store. It is not synced (an operating-system crash may leave it behind the data, which
only misses a loss, never invents one), concurrent writers may leave the lower of two
values (the same), and a mark from another store at the same path (a different
``created`` time) is ignored. Deleting the file only switches the check off.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

from .meta import StoreMeta

MARK_FILE = "sufdec.acked"
_FORMAT = struct.Struct("<dQQ")  # created, next_seq_id, next_log_pos


@dataclass(frozen=True)
class Mark:
    created: float
    next_seq_id: int
    next_log_pos: int


def read(path: Path) -> Mark | None:
    """The mark of the store at ``path``, or None (none yet, unreadable, or damaged)."""
    try:
        data = (path / MARK_FILE).read_bytes()
    except OSError:
        return None
    if len(data) != _FORMAT.size:
        return None
    return Mark(*_FORMAT.unpack(data))


def _write(path: Path, mark: Mark) -> None:
    try:
        fd = os.open(path / MARK_FILE, os.O_WRONLY | os.O_CREAT, 0o644)
    except OSError:
        return  # a read-only directory: no mark, no check
    try:
        os.pwrite(fd, _FORMAT.pack(mark.created, mark.next_seq_id, mark.next_log_pos), 0)
    except OSError:
        pass
    finally:
        os.close(fd)


def advance(path: Path, meta: StoreMeta) -> None:
    """Record that ``meta`` (just committed) was acknowledged; never lowers the mark."""
    old = read(path)
    if old is not None and old.created == meta.created:
        if old.next_seq_id >= meta.next_seq_id and old.next_log_pos >= meta.next_log_pos:
            return
        new = Mark(meta.created, max(old.next_seq_id, meta.next_seq_id), max(old.next_log_pos, meta.next_log_pos))
    else:
        new = Mark(meta.created, meta.next_seq_id, meta.next_log_pos)
    _write(path, new)


def reset(path: Path, meta: StoreMeta) -> None:
    """Make the mark what the store holds now (``verify --repair`` accepting a loss)."""
    _write(path, Mark(meta.created, meta.next_seq_id, meta.next_log_pos))


def lost(mark: Mark | None, meta: StoreMeta) -> str | None:
    """One sentence when ``meta`` is behind what was acknowledged, else None."""
    if mark is None or mark.created != meta.created:
        return None
    if mark.next_seq_id > meta.next_seq_id:
        return (
            f"records with ids {meta.next_seq_id}..{mark.next_seq_id - 1} were acknowledged to writers "
            f"({MARK_FILE}) but are not in the data file: it was replaced by or restored from an older copy"
        )
    if mark.next_log_pos > meta.next_log_pos:
        return (
            f"log records {meta.next_log_pos}..{mark.next_log_pos - 1} were acknowledged to writers "
            f"({MARK_FILE}) but are not in the data file (evictions or touches lost): it was replaced by "
            "or restored from an older copy"
        )
    return None
