"""A stand-in SuffixIndex (same surface as sufdec.suffix.SuffixIndex) used only while
the real one is unavailable, so the store's tests do not depend on the C++ build."""

from __future__ import annotations

import msgpack


class FakeSuffixIndex:
    def __init__(self, max_depth: int = 64) -> None:
        self.max_depth = max_depth
        self._seqs: dict[int, list[int]] = {}

    def add(self, seq_id: int, tokens) -> None:
        self._seqs.setdefault(int(seq_id), []).extend(int(t) for t in tokens)

    def remove(self, seq_id: int) -> None:
        if int(seq_id) not in self._seqs:
            raise KeyError(seq_id)
        del self._seqs[int(seq_id)]

    def __len__(self) -> int:
        return len(self._seqs)

    @property
    def num_tokens(self) -> int:
        return sum(len(t) for t in self._seqs.values())

    def serialize(self) -> bytes:
        return msgpack.packb([self.max_depth, sorted(self._seqs.items())])

    @classmethod
    def load(cls, data: bytes) -> "FakeSuffixIndex":
        depth, items = msgpack.unpackb(data, strict_map_key=False)
        tree = cls(depth)
        tree._seqs = {k: list(v) for k, v in items}
        return tree

    def check_integrity(self) -> None:
        """Raises ValueError on an inconsistency (never, here)."""
