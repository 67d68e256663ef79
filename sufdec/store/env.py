"""LMDB environments: one Environment per path per process, and transactions that grow
the memory map when it is full.

LMDB allows one open Environment per file per process and an Environment must not be
used across ``fork``; the registry here enforces both (it forgets everything in a forked
child, and stores check their pid). ``set_mapsize`` may only run with no transaction
active in the process, so transactions hold an entry's lock shared, growth holds it
exclusively, and growth happens only after the failed write transaction was aborted.

Every transaction first checks that ``data.mdb`` and ``lock.mdb`` are still the files
this process opened (two ``stat`` calls): a deleted ``lock.mdb`` or a ``data.mdb``
replaced under an open store stops the process with one sentence instead of letting it
write through a lock file nobody else sees, or into a file nobody will read again. Every
LMDB error leaves as a typed store error (``failures``); ``envfiles`` checks the files
before LMDB maps them.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import lmdb

from . import envfiles, failures, users
from .envfiles import DATA_FILE, DB_NAMES, LOCK_FILE, Dbs, FileIds, file_ids
from .errors import (
    ForkedStoreError,
    NotEmptyDirectoryError,
    StoreFullError,
    StoreLockedError,
    StoreNotFoundError,
    StoreReadOnlyError,
)
from .resizelock import ResizeLock
from .users import USE_FILE, lock_use

__all__ = [
    "DATA_FILE",
    "DB_NAMES",
    "LOCK_FILE",
    "STORE_FILES",
    "USE_FILE",
    "Dbs",
    "MapLimits",
    "StoreEnv",
    "acquire",
    "lock_use",
]

T = TypeVar("T")


@dataclass(frozen=True)
class MapLimits:
    """How the memory map starts and grows (bytes)."""

    initial: int = 64 << 20
    maximum: int = 1 << 40
    grow_attempts: int = 10


class _Entry:
    def __init__(self, env: lmdb.Environment, dbs: Dbs, readonly: bool, use_fd: int | None, ids: FileIds) -> None:
        self.env = env
        self.dbs = dbs
        self.readonly = readonly
        self.refs = 0
        self.lock = ResizeLock()
        self.use_fd = use_fd
        self.ids = ids


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
    except lmdb.Error as exc:
        raise failures.translate(exc, path, writing=not readonly) from None


def _changed_files(path: Path, ids: FileIds, *, committed: bool) -> StoreLockedError | None:
    """The error to stop with when ``data.mdb`` or ``lock.mdb`` is no longer what was opened."""
    now = file_ids(path)
    if now == ids:
        return None
    last = (
        " (its last transaction may have gone to the old file: run the command again to redo it)" if committed else ""
    )
    if now[0] != ids[0]:
        return StoreLockedError(
            f"data.mdb of the store at {path} was replaced or deleted while this process had the store open; "
            f"it stopped so that nothing more goes into the old file{last}. Run the command again"
        )
    return StoreLockedError(
        f"lock.mdb of the store at {path} was deleted or replaced while this process had the store open; "
        f"it stopped so that no two processes write through different lock files{last}. Run the command "
        "again; never delete lock.mdb or sufdec.lock of a store in use"
    )


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

    def _check_files(self, *, committed: bool = False) -> None:
        error = _changed_files(self.path, self._entry.ids, committed=committed)
        if error is not None:
            raise error

    def read(self, fn: Callable[[lmdb.Transaction], T]) -> T:
        """Run ``fn`` in a read transaction (re-reading the map size if another process grew it)."""
        self._check_files()
        try:
            for _ in range(3):
                try:
                    with self._entry.lock.shared(), self.env.begin(write=False) as txn:
                        return fn(txn)
                except lmdb.MapResizedError:
                    self._adopt_map_size()
            with self._entry.lock.shared(), self.env.begin(write=False) as txn:
                return fn(txn)
        except lmdb.Error as exc:
            raise failures.translate(exc, self.path, writing=False) from None

    def write(self, fn: Callable[[lmdb.Transaction], T]) -> T:
        """Run ``fn`` in one write transaction and commit it.

        On ``MapFullError`` the transaction is aborted, the map grows (doubles) outside any
        transaction, and ``fn`` runs again from scratch, a bounded number of times; ``fn``
        must therefore only change the database, never Python state. Raises
        ``StoreFullError`` when the map cannot grow further; nothing is written then.
        """
        if self.readonly:
            raise StoreReadOnlyError(f"the store at {self.path} is open read-only")
        self._check_files()
        attempts = 0
        while True:
            try:
                with self._entry.lock.shared(), self.env.begin(write=True) as txn:
                    result = fn(txn)
                self._check_files(committed=True)
                return result
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
            except lmdb.Error as exc:
                raise failures.translate(exc, self.path, writing=True) from None

    @contextmanager
    def exclusive(self, what: str) -> Iterator[None]:
        """Hold the store for this process alone: refuses (``StoreLockedError``) while any
        other process has it open, and makes sufdec opens that start meanwhile wait."""
        if self._entry.refs > 1:
            raise StoreLockedError(f"the store at {self.path} is open twice in this process; {what} needs it once")
        fd = self._entry.use_fd
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # our shared lock becomes exclusive
            except BlockingIOError:
                fcntl.flock(fd, fcntl.LOCK_SH)
                users.refuse_if_used(self.path, what, open_here=True)
                raise StoreLockedError(
                    f"the store at {self.path} is open in another process; {what} needs it "
                    "to itself: try again once that process has finished"
                ) from None
        try:
            users.refuse_if_used(self.path, what, open_here=True)
            yield
        finally:
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_SH)

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
                f"the store at {self.path} reached its maximum map size ({current >> 20} MiB); nothing was written"
            )
        try:
            _set_map_size(self.env, new)
        except lmdb.Error as exc:
            raise StoreFullError(
                f"the store at {self.path} could not grow its map to {new >> 20} MiB ({exc}); nothing was written"
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


# the files of a store directory (what it may hold before its data file exists: a creation cut short)
STORE_FILES = (DATA_FILE, LOCK_FILE, USE_FILE, "sufdec.acked")


def _refuse_other_files(path: Path) -> None:
    """A new store goes into a new or empty directory, never among other files (a home
    directory, a project): refused in one line, as a foreign LMDB is."""
    try:
        others = sorted(
            e.name for e in os.scandir(path) if e.name not in STORE_FILES and not e.name.startswith(".compact-")
        )
    except (FileNotFoundError, NotADirectoryError):
        return  # a new directory (or a file there: creating it says so)
    except OSError:
        return  # unreadable: creating the store reports the real error
    if others:
        shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
        raise NotEmptyDirectoryError(
            f"{path} holds other files ({shown}) and no sufdec store: give a new or empty directory for the store"
        )


def _open_entry(path: Path, limits: MapLimits, readonly: bool, existed: bool, use_fd: int | None) -> _Entry | None:
    """Map the store's files and open its databases (None: read-only and lacking them)."""
    try:
        env = _open_lmdb(path, limits, readonly)
    except BaseException:
        if not existed:
            envfiles.discard_failed_creation(path)
        raise
    try:
        try:
            dbs = envfiles.open_dbs(env, readonly, path)
        except lmdb.Error as exc:
            raise failures.translate(exc, path, writing=not readonly) from None
    except BaseException:
        env.close()
        if not existed:
            envfiles.discard_failed_creation(path)
        raise
    if dbs is None:
        env.close()
        return None
    return _Entry(env, dbs, readonly, use_fd, file_ids(path))


def acquire(
    path: Path, limits: MapLimits, *, readonly: bool, create: bool, wait_s: float = 30.0, use_lock: bool = True
) -> StoreEnv | None:
    """The process's shared environment for ``path`` (opened on first use).

    Returns None when the environment exists but has no sufdec databases and is read-only.
    Waits up to ``wait_s`` for a running compaction to finish. ``use_lock=False`` skips
    the shared ``sufdec.lock`` (for a caller that holds it exclusively itself).
    """
    path = Path(os.path.realpath(path))
    envfiles.check_store_reachable(path)
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
            existed = store_exists(path)
            if not existed:
                if readonly or not create:
                    raise StoreNotFoundError(f"no store at {path}")
                _refuse_other_files(path)
                try:
                    path.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise StoreLockedError(f"cannot create the store at {path}: {exc.strerror}") from None
            envfiles.check_before_mapping(path, existed)
            use_fd = lock_use(path, exclusive=False, wait_s=wait_s) if use_lock else None
            try:
                entry = _open_entry(path, limits, readonly, existed, use_fd)
            except BaseException:
                if use_fd is not None:
                    os.close(use_fd)
                raise
            if entry is None:
                if use_fd is not None:
                    os.close(use_fd)
                return None
            _registry[str(path)] = entry
        entry.refs += 1
        return StoreEnv(path, entry, limits)


def is_open(path: Path) -> bool:
    """True while this process holds the environment of the store at ``path`` open."""
    return str(Path(os.path.realpath(path))) in _registry


def open_count() -> int:
    """How many environments this process holds open (for tests)."""
    return len(_registry)
