"""Who has a store open: sufdec's use lock, LMDB's lock file, and the kernel's tables.

Three sources, from the cheapest to the most thorough:

- ``sufdec.lock`` (flock): every ``Store.open`` holds it shared while the store is open;
  compaction takes it exclusively, so opens that start meanwhile wait. It only covers
  sufdec processes, and not once someone deleted the file ("a stale lock").
- ``lock.mdb``: every process that has the LMDB environment open (sufdec or not, read-only
  or not) holds a shared fcntl lock on its first byte for as long as it is open, and LMDB
  also locks one byte per reader pid. The kernel lists these locks in ``/proc/locks``
  with the holder's pid, so that list is exact for every LMDB user on this host, and
  reading it changes nothing. Where it cannot be read, an ``F_GETLK`` probe asks whether
  a write lock on that byte could be taken (only done while this process does not have
  the environment open: closing any descriptor of a file drops all of the process's
  fcntl locks on it, LMDB's included).
- ``/proc/<pid>/fd``: processes holding ``data.mdb`` itself open, which also catches
  environments opened without locking and processes whose ``lock.mdb`` was deleted.

Limits: processes on other hosts (LMDB needs a local file system anyway), and on Linux
only processes whose ``/proc`` entries this user may read (all of them as root); on
layered file systems (overlayfs) the lock table may name the lower device, and then the
open-file scan is what sees them. Between
the last check and what the caller does next, a process that bypasses ``sufdec.lock``
can still open the store; callers keep that window to a rename.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
import time
from pathlib import Path

from .errors import StoreFullError, StoreLockedError

DATA_FILE = "data.mdb"
LOCK_FILE = "lock.mdb"
USE_FILE = "sufdec.lock"  # flock: shared while a process has the store open, exclusive while compacting


def _open_use_file(path: Path, create: bool) -> int | None:
    """The store's use-lock file, or None where it cannot exist (a read-only directory)."""
    try:
        return os.open(path / USE_FILE, (os.O_RDWR | os.O_CREAT) if create else os.O_RDONLY, 0o644)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise StoreFullError(f"cannot create {path / USE_FILE}: the file system is full") from None
        if exc.errno not in (errno.EROFS, errno.ENOENT, errno.EACCES, errno.EPERM):
            raise
    try:
        return os.open(path / USE_FILE, os.O_RDONLY)
    except OSError:
        return None


def lock_use(path: Path, *, exclusive: bool, wait_s: float, create: bool = True) -> int | None:
    """Take the store's use lock (flock; shared for every open, exclusive for compaction).

    Returns the descriptor holding it (close it to release), None when the directory
    cannot hold the lock file. Raises StoreLockedError after ``wait_s`` seconds.
    flock, not fcntl: closing another descriptor of the file never drops it, and it does
    not interfere with LMDB's own fcntl locks on lock.mdb.
    """
    fd = _open_use_file(path, create)
    if fd is None:
        return None
    mode = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, mode)
            return fd
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                what = "is open in another process" if exclusive else "is being compacted"
                raise StoreLockedError(f"the store at {path} {what}; try again when it is done") from None
            time.sleep(0.05)


def use_lock_busy(path: Path) -> bool:
    """True while some process holds ``sufdec.lock`` (this probe takes and drops it)."""
    try:
        fd = os.open(path / USE_FILE, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def _inode(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _lock_holders_from_proc(lock: Path) -> set[int] | None:
    """Pids holding any lock on ``lock`` per ``/proc/locks`` (None where it is unreadable)."""
    key = _inode(lock)
    if key is None:
        return set()
    try:
        with open("/proc/locks") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    dev, ino = key
    want = f"{os.major(dev):02x}:{os.minor(dev):02x}:{ino}"
    pids = set()
    for line in lines:
        fields = line.replace("->", " ").split()
        if len(fields) >= 6 and fields[5] == want:
            try:
                pids.add(int(fields[4]))
            except ValueError:
                continue
    return pids


def _lock_holder_by_probe(lock: Path) -> set[int]:
    """The pid of one process with the environment open, by asking for LMDB's byte 0."""
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return set()
    try:
        query = struct.pack("hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET, 0, 1, 0)
        kind, _, _, _, pid = struct.unpack("hhqqi4x", fcntl.fcntl(fd, fcntl.F_GETLK, query))
        return set() if kind == fcntl.F_UNLCK else {pid}
    except OSError:
        return set()
    finally:
        os.close(fd)


def data_file_holders(path: Path) -> set[int]:
    """Pids (other than ours) that hold the store's ``data.mdb`` open (Linux; empty elsewhere)."""
    key = _inode(path / DATA_FILE)
    if key is None or not os.path.isdir("/proc/self/fd"):
        return set()
    me, found = os.getpid(), set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            fds = os.listdir(f"/proc/{entry.name}/fd")
        except OSError:
            continue
        for fd in fds:
            if _inode(Path(f"/proc/{entry.name}/fd/{fd}")) == key:
                found.add(int(entry.name))
                break
    return found


def others_using(path: Path, *, open_here: bool) -> list[int]:
    """Pids of other processes that have the store's environment open (see the module
    docstring for what can be seen). ``open_here``: this process has it open too (then
    the fcntl probe, which would drop our own locks, is skipped)."""
    lock = path / LOCK_FILE
    holders = _lock_holders_from_proc(lock)
    if holders is None:
        holders = set() if open_here else _lock_holder_by_probe(lock)
    holders |= data_file_holders(path)
    holders.discard(os.getpid())
    return sorted(holders)


def refuse_if_used(path: Path, what: str, *, open_here: bool) -> None:
    """Raise ``StoreLockedError`` when another process has the store open."""
    pids = others_using(path, open_here=open_here)
    if pids:
        who = ", ".join(str(p) if p > 0 else "?" for p in pids[:5])
        raise StoreLockedError(
            f"the store at {path} is open in another process (pid {who}); {what} needs it to itself: "
            "try again once that process has finished"
        )
