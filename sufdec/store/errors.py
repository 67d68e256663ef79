"""Typed errors raised by the store; each carries one sentence a user can act on."""

from __future__ import annotations


class StoreError(Exception):
    """Base class of every error the store raises on purpose."""


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
    """The memory map could not grow enough to hold a write; nothing was written."""


class StoreCorruptError(StoreError):
    """Stored bytes fail their checks (snapshot digest, record layout)."""


class ForkedStoreError(StoreError):
    """A store (an LMDB environment) was used in a process forked after it was opened."""


class MalformedLineError(StoreError):
    """A JSONL line is unusable and ingest runs in strict mode."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: {reason}")
        self.line = line
        self.reason = reason
