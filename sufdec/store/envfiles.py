"""Opening a store's LMDB files without letting LMDB crash the process or write where it
must not: everything ``env.acquire`` checks before and while it maps them.

- ``data.mdb`` is checked against its own LMDB header first (``datafile.check``): empty,
  overwritten and truncated files are refused instead of mapped (SIGBUS).
- ``lock.mdb`` missing while another process has the store open means it was deleted
  under that process; opening now would give the two processes different lock files
  (different reader tables and writer locks): refused. Missing with nobody using the
  store is harmless: LMDB makes a new one.
- A new ``lock.mdb`` is made by us with its blocks allocated (``posix_fallocate``)
  before LMDB maps it: on a full tmpfs, LMDB's first write into an unbacked page of
  it was a SIGBUS. Creating a store also needs some free space to begin with.
- An environment holding anything but sufdec's databases (or a ``meta`` database with
  another format magic) is not ours: refused before any database is created in it.
- A store whose creation failed leaves no half-written ``data.mdb`` behind.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import NamedTuple

import lmdb

from . import datafile, failures, users
from .codec import pack
from .errors import NotAStoreError, StoreError, StoreIOError, StoreLockedError
from .meta import FORMAT_MAGIC
from .users import DATA_FILE, LOCK_FILE

DB_NAMES = ("meta", "sequences", "hashes", "snapshot", "log")
LOCK_FILE_BYTES = 8192  # what LMDB 0.9 makes for its default 126 readers
ROOM_TO_CREATE = 1 << 20

FileIds = tuple[object, object]


class Dbs(NamedTuple):
    meta: object
    sequences: object
    hashes: object
    snapshot: object
    log: object


def file_ids(path: Path) -> FileIds:
    """(device, inode) of ``data.mdb`` and ``lock.mdb`` (None for a missing one)."""
    out = []
    for name in (DATA_FILE, LOCK_FILE):
        try:
            st = os.stat(path / name)
            out.append((st.st_dev, st.st_ino))
        except OSError:
            out.append(None)
    return out[0], out[1]


def check_store_reachable(path: Path) -> None:
    """Refuse, with one sentence, a store path this process cannot look into: a directory on
    the way without permission, a file where a directory should be (``/etc/passwd/x``), a
    name LMDB cannot open (it takes UTF-8 paths only)."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError as exc:
        shown = os.fsencode(str(path)).decode("utf-8", "backslashreplace")
        raise StoreError(
            f"the store path {shown} is not UTF-8 (byte 0x{ord(str(path)[exc.start]) & 0xFF:02x}), "
            "and LMDB opens UTF-8 paths only: choose another --store"
        ) from None
    for target in (path, path / DATA_FILE):
        try:
            os.stat(target)
        except FileNotFoundError:
            return
        except NotADirectoryError:
            blocker = next((p for p in reversed(target.parents) if p.is_file()), target.parent)
            raise NotAStoreError(f"cannot use {path} as a store: {blocker} is a file, not a directory") from None
        except PermissionError:
            raise StoreLockedError(
                f"cannot reach the store at {path}: permission denied (this user may not look into it or a "
                "directory on the way to it)"
            ) from None
        except OSError as exc:
            raise StoreIOError(f"cannot reach the store at {path}: {exc.strerror or exc}") from None
    if not path.is_dir():
        raise NotAStoreError(f"{path} is a file, not a store directory")


def check_before_mapping(path: Path, existed: bool) -> None:
    """What must hold before LMDB maps the files of the store at ``path``."""
    if existed:
        datafile.check(path)
        if not (path / LOCK_FILE).exists():
            _refuse_missing_lock(path)
    else:
        free = failures.free_bytes(path)
        if free is not None and free < ROOM_TO_CREATE:
            raise failures.full_disk(path, "there is no room to create a store (it needs 1 MiB to begin)")
    _prepare_lock_file(path)


def _refuse_missing_lock(path: Path) -> None:
    pids = users.data_file_holders(path)
    if pids or users.use_lock_busy(path):
        who = f" (pid {', '.join(map(str, sorted(pids)[:5]))})" if pids else ""
        raise StoreLockedError(
            f"lock.mdb of the store at {path} is missing while another process{who} has the store open: "
            "it was deleted under that process. Wait until it has finished (sufdec stops at its next "
            "transaction), then run this again; never delete lock.mdb or sufdec.lock of a store in use"
        )


def _prepare_lock_file(path: Path) -> None:
    """Create ``lock.mdb`` with its blocks allocated, so that mapping it cannot SIGBUS."""
    lock = path / LOCK_FILE
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise failures.full_disk(path, "there is no room for its lock file") from None
        return  # it exists, or the directory is read-only: LMDB decides
    try:
        os.posix_fallocate(fd, 0, LOCK_FILE_BYTES)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            os.close(fd)
            fd = -1
            lock.unlink(missing_ok=True)
            raise failures.full_disk(path, "there is no room for its lock file") from None
    finally:
        if fd >= 0:
            os.close(fd)


def discard_failed_creation(path: Path) -> None:
    """After a failed first open: remove a ``data.mdb`` without a whole LMDB header (made
    by that open), so that the next try starts afresh instead of finding it damaged."""
    data = path / DATA_FILE
    try:
        if datafile.read_header(data) is not None:
            return
    except FileNotFoundError:
        return
    except Exception:  # noqa: BLE001 - a partial header: ours, and useless
        pass
    data.unlink(missing_ok=True)


def open_dbs(env: lmdb.Environment, readonly: bool, path: Path) -> Dbs | None:
    """The named databases (created where missing), or None if a read-only environment
    lacks them; refuses an environment that holds anything else (``NotAStoreError``)."""
    _refuse_foreign(env, path)
    try:
        handles = [env.open_db(n.encode(), create=not readonly) for n in DB_NAMES]
    except lmdb.NotFoundError:
        return None
    return Dbs(*handles)


def _refuse_foreign(env: lmdb.Environment, path: Path) -> None:
    with env.begin() as txn:
        names = [bytes(k) for k, _ in txn.cursor()]
        other = [n.decode("utf-8", "replace") for n in names if n.decode("utf-8", "replace") not in DB_NAMES]
        if not other and b"meta" in names:
            db = env.open_db(b"meta", txn=txn, create=False)
            if txn.stat(db)["entries"] and txn.get(b"magic", db=db) != pack(FORMAT_MAGIC):
                other = ["a 'meta' database without sufdec's format magic"]
    if other:
        what = other[0] if other[0].startswith("a ") else f"a database or key named {other[0]!r}"
        raise NotAStoreError(
            f"{path} holds an LMDB environment that is not a sufdec store (it has {what}); "
            "use another --store directory"
        )
