"""Ordered format migrations: ``MIGRATIONS[v]`` turns a version-``v`` store into ``v + 1``.

Each step runs inside the opening write transaction and receives the raw meta dict (it
may edit it) and the write transaction with the store's databases, so a failed migration
leaves the store exactly as it was. Version 1 is the first format: the table is empty
until a format change needs a step.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .errors import StoreError

Migration = Callable[[Any, Any, dict[str, Any]], None]
"""``step(txn, dbs, raw_meta)``: rewrite what changed; ``raw_meta`` is written back after."""

MIGRATIONS: dict[int, Migration] = {}


def migrate(
    txn: Any,
    dbs: Any,
    raw_meta: dict[str, Any],
    target: int,
    table: Mapping[int, Migration] | None = None,
) -> list[int]:
    """Run every step from ``raw_meta['format_version']`` up to ``target``, in order.

    Returns the versions migrated from (empty when already current). The caller writes
    ``raw_meta`` back in the same transaction.
    """
    steps = MIGRATIONS if table is None else table
    version = int(raw_meta["format_version"])
    done: list[int] = []
    while version < target:
        step = steps.get(version)
        if step is None:
            raise StoreError(f"no migration from store format {version} to {version + 1}")
        step(txn, dbs, raw_meta)
        done.append(version)
        version += 1
        raw_meta["format_version"] = version
    return done
