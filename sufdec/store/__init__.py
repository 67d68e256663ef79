"""Persistent store of past outputs (LMDB) and the suffix tree derived from them.

Never imports torch or transformers: ``sufdec stats`` / ``sufdec index`` start fast.
"""

from .env import MapLimits, default_store_path
from .errors import (
    ForkedStoreError,
    FormatTooNewError,
    MalformedLineError,
    MigrationRequiredError,
    NotAStoreError,
    StoreCorruptError,
    StoreError,
    StoreFullError,
    StoreLockedError,
    StoreNotFoundError,
    StoreReadOnlyError,
    TokenizerMismatchError,
)
from .meta import FORMAT_VERSION, StoreMeta, TokenizerInfo
from .store import AddSummary, SequenceRecord, Store, StoreConfig, StoredSequence, StoreStats

__all__ = [
    "AddSummary",
    "FORMAT_VERSION",
    "ForkedStoreError",
    "FormatTooNewError",
    "MalformedLineError",
    "MapLimits",
    "MigrationRequiredError",
    "NotAStoreError",
    "SequenceRecord",
    "Store",
    "StoreConfig",
    "StoreCorruptError",
    "StoreError",
    "StoreFullError",
    "StoreLockedError",
    "StoreMeta",
    "StoreNotFoundError",
    "StoreReadOnlyError",
    "StoreStats",
    "StoredSequence",
    "TokenizerInfo",
    "TokenizerMismatchError",
    "default_store_path",
]
