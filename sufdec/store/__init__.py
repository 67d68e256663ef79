"""Persistent store of past outputs (LMDB) and the suffix tree derived from them.

Never imports torch or transformers: ``sufdec stats`` / ``sufdec index`` start fast.
Never reads environment variables either: callers pick the store's path with
``resolve_store_path(explicit, os.environ)`` at their edge and pass it down.

This package is the store's face: the CLI and the benchmarks import from ``sufdec.store``
only, never from its modules. It exports the ``Store`` and what opens it (``StoreConfig``,
``MapLimits``, ``resolve_store_path``), its records and errors, the budget (``Budget``,
``MAX_BUDGET``, ``EVICTION_POLICIES``), maintenance (``verify_report``, ``repair_store``,
``compact_store``, ``remove_empty_store``), JSONL ingest (``ingest_jsonl``), the check a
command makes on a store path before it loads anything (``check_store_reachable``) and
``count_sources`` (records per writer kind, for ``sufdec stats``).

Modules, each one job: ``store`` (the ``Store`` face), ``opening``, ``writes``, ``reads``,
``treestate`` (the derived suffix tree), ``verify`` and ``compact`` (maintenance, over the
public ``Store``), ``ingest`` and ``jsonlines`` (JSONL), and below them ``env`` (LMDB
environments), ``envfiles`` and ``datafile`` (checking the files before LMDB maps them),
``users`` (who has a store open), ``failures`` (LMDB errors as typed errors), ``mark``
(acknowledged ids, for lost-record checks), ``resizelock``, ``meta``/``migrations``,
``snapshot``, ``evict``, ``codec``, ``config``, ``records``, ``paths``.
"""

from .codec import content_hash, decode_tokens, encode_tokens
from .compact import compact_store, remove_empty_store
from .config import StoreConfig
from .env import MapLimits
from .envfiles import check_store_reachable
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
from .evict import Budget
from .ingest import ingest_jsonl
from .meta import EVICTION_POLICIES, FORMAT_VERSION, MAX_BUDGET, StoreMeta, TokenizerInfo
from .paths import default_store_path, resolve_store_path
from .reads import count_sources
from .records import AddSummary, SequenceRecord, StoredSequence, StoreStats
from .store import Store
from .verify import repair_store, verify_report

__all__ = [
    "content_hash",
    "decode_tokens",
    "encode_tokens",
    "AddSummary",
    "Budget",
    "EVICTION_POLICIES",
    "EmptyStorePathError",
    "FORMAT_VERSION",
    "ForkedStoreError",
    "FormatTooNewError",
    "MAX_BUDGET",
    "MalformedLineError",
    "MapLimits",
    "MigrationRequiredError",
    "NotAStoreError",
    "NotEmptyDirectoryError",
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
    "check_store_reachable",
    "compact_store",
    "count_sources",
    "default_store_path",
    "ingest_jsonl",
    "remove_empty_store",
    "repair_store",
    "resolve_store_path",
    "verify_report",
]
