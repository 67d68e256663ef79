"""LMDB environments: one Environment per path per process, and transactions that grow
the memory map when it is full.

LMDB allows one open Environment per file per process and an Environment must not be
used across ``fork``; the registry here enforces both (it forgets everything in a forked
child, and stores check their pid). ``set_mapsize`` may only run with no transaction
active in the process, so transactions hold an entry's lock shared, growth holds it
exclusively, and growth happens only after the failed write transaction was aborted.
"""

from __future__ import annotations

import errno
import fcntl
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, TypeVar

import lmdb

from .errors import (
    ForkedStoreError,
    NotAStoreError,
    StoreFullError,
    StoreLockedError,
    StoreNotFoundError,
    StoreReadOnlyError,
)

T = TypeVar("T")

DATA_FILE = "data.mdb"
LOCK_FILE = "lock.mdb"
USE_FILE = "sufdec.lock"  # flock: shared while a process has the store open, exclusive while compacting
DB_NAMES = ("meta", "sequences", "hashes", "snapshot", "log")


@dataclass(frozen=True)
class MapLimits:
    """How the memory map starts and grows (bytes)."""

    initial: int = 64 << 20
    maximum: int = 1 << 40
    grow_attempts: int = 10


class Dbs(NamedTuple):
    meta: object
    sequences: object
    hashes: object
    snapshot: object
    log: object


class _ResizeLock:
    """Transactions hold it shared (re-entrantly); resizing the map holds it exclusively,
    since ``set_mapsize`` needs every transaction in the process finished. Readers and
    writers never wait for each other here (LMDB itself serialises writers)."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._shared = 0
        self._exclusive = False
        self._waiting = 0
        self._local = threading.local()

    @contextmanager
    def shared(self) -> Iterator[None]:
        depth = getattr(self._local, "depth", 0)
        if depth == 0:
            with self._cond:
                while self._exclusive or self._waiting:
                    self._cond.wait()
                self._shared += 1
        self._local.depth = depth + 1
        try:
            yield
        finally:
            self._local.depth = depth
            if depth == 0:
                with self._cond:
                    self._shared -= 1
                    self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        if getattr(self._local, "depth", 0):
            raise RuntimeError("cannot resize the map inside a transaction")
        with self._cond:
            self._waiting += 1
            while self._exclusive or self._shared:
                self._cond.wait()
            self._waiting -= 1
            self._exclusive = True
        try:
            yield
        finally:
            with self._cond:
                self._exclusive = False
                self._cond.notify_all()


class _Entry:
    def __init__(self, env: lmdb.Environment, dbs: Dbs, readonly: bool, use_fd: int | None) -> None:
        self.env = env
        self.dbs = dbs
        self.readonly = readonly
        self.refs = 0
        self.lock = _ResizeLock()
        self.use_fd = use_fd


def _open_use_file(path: Path, create: bool) -> int | None:
    """The store's use-lock file, or None where it cannot exist (a read-only directory)."""
    try:
        return os.open(path / USE_FILE, (os.O_RDWR | os.O_CREAT) if create else os.O_RDONLY, 0o644)
    except PermissionError:
        pass
    except OSError as exc:
        if exc.errno not in (errno.EROFS, errno.ENOENT, errno.EACCES):
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


_registry: dict[str, _Entry] = {}
_registry_lock = threading.Lock()
# Environments a forked child inherited: kept referenced so they are never closed (closing
# would clear the parent's reader slots), and their paths refused with a clear error.
_inherited: dict[str, _Entry] = {}


def _forget_after_fork() -> None:
    global _registry_lock
    _inherited.update(_registry)
    _registry.clear()
    _registry_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


def _set_map_size(env: lmdb.Environment, size: int) -> None:
    """The one place the map is resized (tests replace it to simulate a full disk)."""
    env.set_mapsize(size)


def _open_lmdb(path: Path, limits: MapLimits, readonly: bool) -> lmdb.Environment:
    data = path / DATA_FILE
    map_size = max(limits.initial, data.stat().st_size if data.is_file() else 0)
    try:
        return lmdb.open(
            str(path),
            map_size=map_size,
            subdir=True,
            readonly=readonly,
            create=not readonly,
            max_dbs=len(DB_NAMES) + 2,
            lock=True,
            sync=True,
            metasync=True,
            readahead=False,
        )
    except (lmdb.LockError, lmdb.ReadersFullError) as exc:
        raise StoreLockedError(f"the store at {path} is locked or its reader table is full: {exc}") from None
    except lmdb.Error as exc:
        if isinstance(exc, lmdb.ReadonlyError) or "Permission denied" in str(exc):
            what = "read" if readonly else "write to"
            raise StoreLockedError(
                f"cannot {what} the store at {path}: permission denied (a read-only directory or files?)"
            ) from None
        raise


def _open_dbs(env: lmdb.Environment, readonly: bool) -> Dbs | None:
    """The named databases, or None if a read-only environment lacks them."""
    try:
        handles = [env.open_db(n.encode(), create=not readonly) for n in DB_NAMES]
    except lmdb.NotFoundError:
        return None
    return Dbs(*handles)


class StoreEnv:
    """A shared LMDB environment plus transaction helpers that survive a full map."""

    def __init__(self, path: Path, entry: _Entry, limits: MapLimits) -> None:
        self.path = path
        self._entry = entry
        self.limits = limits
        self.pid = os.getpid()
        self.closed = False

    @property
    def env(self) -> lmdb.Environment:
        return self._entry.env

    @property
    def dbs(self) -> Dbs:
        return self._entry.dbs

    @property
    def readonly(self) -> bool:
        return self._entry.readonly

    def read(self, fn: Callable[[lmdb.Transaction], T]) -> T:
        """Run ``fn`` in a read transaction (re-reading the map size if another process grew it)."""
        for _ in range(3):
            try:
                with self._entry.lock.shared(), self.env.begin(write=False) as txn:
                    return fn(txn)
            except lmdb.MapResizedError:
                self._adopt_map_size()
        with self._entry.lock.shared(), self.env.begin(write=False) as txn:
            return fn(txn)

    def write(self, fn: Callable[[lmdb.Transaction], T]) -> T:
        """Run ``fn`` in one write transaction and commit it.

        On ``MapFullError`` the transaction is aborted, the map grows (doubles) outside any
        transaction, and ``fn`` runs again from scratch, a bounded number of times; ``fn``
        must therefore only change the database, never Python state. Raises
        ``StoreFullError`` when the map cannot grow further; nothing is written then.
        """
        if self.readonly:
            raise StoreReadOnlyError(f"the store at {self.path} is open read-only")
        attempts = 0
        while True:
            try:
                with self._entry.lock.shared(), self.env.begin(write=True) as txn:
                    return fn(txn)
            except lmdb.MapResizedError:
                self._adopt_map_size()
            except lmdb.MapFullError:
                attempts += 1
                if attempts > self.limits.grow_attempts:
                    raise StoreFullError(
                        f"the store at {self.path} is still full after growing its map "
                        f"{self.limits.grow_attempts} times; nothing was written"
                    ) from None
                self._grow()

    def _adopt_map_size(self) -> None:
        """Another process grew the file beyond our map: map what is there now."""
        with self._entry.lock.exclusive():
            _set_map_size(self.env, 0)

    def _grow(self) -> None:
        with self._entry.lock.exclusive():
            self._grow_locked()

    def _grow_locked(self) -> None:
        current = self.env.info()["map_size"]
        new = min(current * 2, self.limits.maximum)
        if new <= current:
            raise StoreFullError(
                f"the store at {self.path} reached its maximum map size "
                f"({current >> 20} MiB); nothing was written"
            )
        try:
            _set_map_size(self.env, new)
        except lmdb.Error as exc:
            raise StoreFullError(
                f"the store at {self.path} could not grow its map to {new >> 20} MiB ({exc}); "
                "nothing was written"
            ) from None

    def close(self) -> None:
        """Release this handle; the Environment closes with its last handle."""
        if self.closed:
            return
        self.closed = True
        if os.getpid() != self.pid:
            return  # a forked child: the registry already forgot the parent's environment
        key = str(self.path)
        with _registry_lock:
            entry = _registry.get(key)
            if entry is not self._entry:
                return
            entry.refs -= 1
            if entry.refs <= 0:
                del _registry[key]
                with entry.lock.exclusive():
                    entry.env.close()
                if entry.use_fd is not None:
                    os.close(entry.use_fd)


def store_exists(path: Path) -> bool:
    return (path / DATA_FILE).is_file()


def acquire(
    path: Path, limits: MapLimits, *, readonly: bool, create: bool, wait_s: float = 30.0
) -> StoreEnv | None:
    """The process's shared environment for ``path`` (opened on first use).

    Returns None when the environment exists but has no sufdec databases and is read-only.
    Waits up to ``wait_s`` for a running compaction to finish.
    """
    path = Path(os.path.realpath(path))
    if path.exists() and not path.is_dir():
        raise NotAStoreError(f"{path} is a file, not a store directory")
    with _registry_lock:
        entry = _registry.get(str(path))
        if entry is not None:
            if entry.readonly and not readonly:
                raise StoreReadOnlyError(
                    f"the store at {path} is already open read-only in this process; "
                    "close it before opening it writable"
                )
        else:
            if str(path) in _inherited:
                raise ForkedStoreError(
                    f"this process inherited the store at {path} through fork and cannot reopen it; "
                    "open stores only after worker processes start (or use the spawn start method)"
                )
            if not store_exists(path):
                if readonly or not create:
                    raise StoreNotFoundError(f"no store at {path}")
                try:
                    path.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise StoreLockedError(f"cannot create the store at {path}: {exc.strerror}") from None
            use_fd = lock_use(path, exclusive=False, wait_s=wait_s)
            try:
                env = _open_lmdb(path, limits, readonly)
                dbs = _open_dbs(env, readonly)
            except BaseException:
                if use_fd is not None:
                    os.close(use_fd)
                raise
            if dbs is None:
                env.close()
                if use_fd is not None:
                    os.close(use_fd)
                return None
            entry = _Entry(env, dbs, readonly, use_fd)
            _registry[str(path)] = entry
        entry.refs += 1
        return StoreEnv(path, entry, limits)


def is_open(path: Path) -> bool:
    """True while this process holds the environment of the store at ``path`` open."""
    return str(Path(os.path.realpath(path))) in _registry


def open_count() -> int:
    """How many environments this process holds open (for tests)."""
    return len(_registry)
