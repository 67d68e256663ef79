"""What LMDB's errors mean for a store: each one becomes a typed store error whose one
sentence says what happened and what to do.

LMDB reports a full disk as ``ENOSPC`` (``lmdb.DiskError``) or, when a write of several
pages went through only in part, as ``EIO`` ("Input/output error"); either way the
transaction was not committed (LMDB writes the meta page that makes a transaction real
only after every page of it), so nothing of it is in the store and everything committed
before stays. Damage to LMDB's own file structure (a page of the wrong type, a page
number beyond the file) is beyond sufdec's repair: the data must come from a backup or
be indexed again.
"""

from __future__ import annotations

import os
from pathlib import Path

import lmdb

from .errors import StoreError, StoreFileDamagedError, StoreFullError, StoreIOError, StoreLockedError

NEARLY_FULL = 16 << 20  # an I/O error with less free space than this is taken for a full disk
_DAMAGE = (
    lmdb.CorruptedError,
    lmdb.PageNotFoundError,
    lmdb.InvalidError,
    lmdb.PanicError,
    lmdb.PageFullError,
    lmdb.IncompatibleError,
    lmdb.BadDbiError,
)


def _statvfs(path: Path) -> os.statvfs_result | None:
    """The file system holding ``path`` (or its parent, for a path not made yet)."""
    for where in (path, path.parent):
        try:
            return os.statvfs(where)
        except OSError:
            continue
    return None


def free_bytes(path: Path) -> int | None:
    """Bytes an unprivileged user may still write on the file system holding ``path``."""
    st = _statvfs(path)
    return st.f_bavail * st.f_frsize if st is not None else None


def without_storage(path: Path) -> bool:
    """``path`` is on a file system that stores nothing (/proc, /sys: no blocks at all),
    where "0 bytes free" means "not a disk", not "full"."""
    st = _statvfs(path)
    return st is not None and st.f_blocks == 0


def _human(n: int | None) -> str:
    if n is None:
        return "an unknown amount"
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n //= 1024
    return str(n)


def full_disk(path: Path, doing: str) -> StoreError:
    if without_storage(path):
        return StoreIOError(
            f"{path} is on a file system that stores no files (like /proc or /sys), "
            "not a disk: put the store in a directory on a disk"
        )
    return StoreFullError(
        f"the file system holding the store at {path} is full ({_human(free_bytes(path))} free): "
        f"{doing}; free some space and run it again"
    )


def translate(exc: BaseException, path: Path, *, writing: bool) -> StoreError:
    """The typed store error for an LMDB (or file system) error met on the store at ``path``."""
    text = str(exc)
    if isinstance(exc, (lmdb.LockError, lmdb.ReadersFullError)):
        return StoreLockedError(f"the store at {path} is locked or its reader table is full: {exc}")
    if isinstance(exc, lmdb.ReadonlyError) or "Permission denied" in text:
        what = "write to" if writing else "read"
        return StoreLockedError(
            f"cannot {what} the store at {path}: permission denied (a read-only directory or files?)"
        )
    io_error = "Input/output error" in text
    free = free_bytes(path)
    if (
        isinstance(exc, lmdb.DiskError)
        or "No space left" in text
        or "quota exceeded" in text
        or (io_error and free is not None and free < NEARLY_FULL)
    ):
        return full_disk(path, "nothing of the last write was committed, everything before it is kept")
    if io_error:
        return StoreIOError(
            f"an input/output error on the store at {path} ({exc}); nothing of the last write was committed. "
            "Check the disk (dmesg), then run it again"
        )
    if isinstance(exc, (lmdb.BadTxnError, lmdb.BadRslotError, lmdb.VersionMismatchError)):
        return StoreLockedError(
            f"LMDB refused a transaction on the store at {path} ({exc}): its lock.mdb was probably deleted "
            "or replaced while a process had the store open; once no process uses the store, run the command again"
        )
    if isinstance(exc, _DAMAGE):
        return StoreFileDamagedError(
            f"the store at {path} is damaged (LMDB: {exc}); sufdec cannot repair LMDB's own file structure: "
            "restore the store from a backup, or delete it and index your outputs again"
        )
    return StoreError(f"LMDB failed on the store at {path}: {exc}")
