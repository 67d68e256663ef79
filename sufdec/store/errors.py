"""Typed errors raised by the store; each carries one sentence a user can act on."""

from __future__ import annotations


class StoreError(Exception):
    """Base class of every error the store raises on purpose."""


class EmptyStorePathError(StoreError):
    """A store path was given but empty (``Path("")`` would silently be the current directory)."""


class NotEmptyDirectoryError(StoreError):
    """A store would be created in a directory that holds other files."""


class StoreNotFoundError(StoreError):
    """No store exists at the path and creating one was not allowed."""


class NotAStoreError(StoreError):
    """The path holds an LMDB environment that is not a sufdec store."""


class TokenizerMismatchError(StoreError):
    """The store was built with another tokenizer; its token ids mean other things."""


class FormatTooNewError(StoreError):
    """The store was written by a newer sufdec whose format this one cannot read."""


class MigrationRequiredError(StoreError):
    """The store has an older format and must be opened writable once to migrate it."""


class StoreLockedError(StoreError):
    """The store's lock file cannot be used (permissions, full reader table)."""


class StoreReadOnlyError(StoreError):
    """A write was asked of a store opened read-only."""


class StoreFullError(StoreError):
    """The memory map could not grow, or the file system is full; nothing of the write was committed."""


class StoreIOError(StoreError):
    """The file system failed a read or write of the store (an input/output error)."""


class StoreCorruptError(StoreError):
    """Stored bytes fail their checks (snapshot digest, record layout), or LMDB found its
    data file damaged (truncated, overwritten, a page of the wrong type)."""


class StoreFileDamagedError(StoreCorruptError):
    """LMDB's own file structure is damaged (truncated, overwritten, a page of the wrong
    type): beyond ``verify --repair``; the data must come from a backup or be indexed again."""


class ForkedStoreError(StoreError):
    """A store (an LMDB environment) was used in a process forked after it was opened."""


class MalformedLineError(StoreError):
    """A JSONL line is unusable and ingest runs in strict mode; ``committed`` records of
    the run were committed before it (they stay)."""

    def __init__(self, line: int, reason: str, committed: int | None = None) -> None:
        message = f"line {line}: {reason}"
        if committed is not None:
            message += f" (--strict stops here; {committed:,} records of this run were committed before it and stay)"
        super().__init__(message)
        self.line = line
        self.reason = reason
        self.committed = committed
