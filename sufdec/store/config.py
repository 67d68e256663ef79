"""``StoreConfig``: how a store is opened and maintained, in one frozen object.

Kept apart from ``Store`` so that callers (the CLI, the session, benchmarks) can build and
pass a configuration without touching the opening or writing code.
"""

from __future__ import annotations

from dataclasses import dataclass

from .env import MapLimits
from .evict import Budget


@dataclass(frozen=True)
class StoreConfig:
    """How a store is opened and maintained.

    ``max_depth`` only applies when the store is created (the tree's depth is recorded).
    ``max_tokens`` / ``max_bytes`` / ``eviction``: the budget (see ``evict.Budget``; 0 =
    unlimited); None keeps what the store records, a value is recorded by a writable open
    and kept by later opens. ``open_wait_s``: how long an open waits for a running
    ``compact`` before giving up.
    A checkpoint runs after a write once the log holds ``checkpoint_records`` records or
    ``checkpoint_tokens`` tokens (only while the tree is loaded). ``add_many`` commits
    at most ``txn_records`` records / ``txn_tokens`` tokens per transaction.
    """

    max_depth: int = 64
    map: MapLimits = MapLimits()
    checkpoint_records: int = 10_000
    checkpoint_tokens: int = 2_000_000
    snapshot_chunk_size: int = 4 << 20
    txn_records: int = 4096
    txn_tokens: int = 4_000_000
    max_tokens: int | None = None
    max_bytes: int | None = None
    eviction: str | None = None
    open_wait_s: float = 30.0

    def budget_over(self, recorded: Budget) -> Budget:
        """``recorded`` with the limits this config names put over it."""
        return Budget(
            recorded.max_tokens if self.max_tokens is None else self.max_tokens,
            recorded.max_bytes if self.max_bytes is None else self.max_bytes,
            recorded.eviction if self.eviction is None else self.eviction,
        )

    def validate(self) -> None:
        """Raise ValueError now for a budget the config cannot name (before any open)."""
        Budget(self.max_tokens or 0, self.max_bytes or 0, self.eviction or "fifo")
