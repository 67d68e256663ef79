"""Persistent store of past outputs (LMDB) and the suffix tree derived from them.

Never imports torch or transformers: ``sufdec stats`` / ``sufdec index`` start fast.
Never reads environment variables either: callers pick the store's path with
``resolve_store_path(explicit, os.environ)`` at their edge and pass it down.

Modules, each one job: ``store`` (the ``Store`` face), ``opening``, ``writes``, ``reads``,
``treestate`` (the derived suffix tree), ``verify`` and ``compact`` (maintenance, over the
public ``Store``), ``ingest`` and ``jsonlines`` (JSONL), and below them ``env`` (LMDB
environments), ``envfiles`` and ``datafile`` (checking the files before LMDB maps them),
``users`` (who has a store open), ``failures`` (LMDB errors as typed errors), ``mark``
(acknowledged ids, for lost-record checks), ``resizelock``, ``meta``/``migrations``,
``snapshot``, ``evict``, ``codec``, ``config``, ``records``, ``paths``.
"""

from .config import StoreConfig
from .env import MapLimits
from .errors import (
    EmptyStorePathError,
    ForkedStoreError,
    FormatTooNewError,
    MalformedLineError,
    MigrationRequiredError,
    NotAStoreError,
    NotEmptyDirectoryError,
    StoreCorruptError,
    StoreError,
    StoreFileDamagedError,
    StoreFullError,
    StoreIOError,
    StoreLockedError,
    StoreNotFoundError,
    StoreReadOnlyError,
    TokenizerMismatchError,
)
from .meta import FORMAT_VERSION, StoreMeta, TokenizerInfo
from .paths import default_store_path, resolve_store_path
from .records import AddSummary, SequenceRecord, StoredSequence, StoreStats
from .store import Store

__all__ = [
    "AddSummary",
    "EmptyStorePathError",
    "NotEmptyDirectoryError",
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
    "StoreFileDamagedError",
    "StoreFullError",
    "StoreIOError",
    "StoreLockedError",
    "StoreMeta",
    "StoreNotFoundError",
    "StoreReadOnlyError",
    "StoreStats",
    "StoredSequence",
    "TokenizerInfo",
    "TokenizerMismatchError",
    "default_store_path",
    "resolve_store_path",
]
