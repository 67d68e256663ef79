"""The ``snapshot`` database: the serialized tree cut into fixed-size chunks.

Chunk ``i`` lives under the big-endian key ``i``. Meta records the chunk count, total
size and a BLAKE2b digest, written in the same transaction as the chunks, so a
snapshot is either wholly the old one or wholly the new one.
"""

from __future__ import annotations

import hashlib
from typing import Any

from . import codec
from .errors import StoreCorruptError
from .meta import StoreMeta


def digest(data: bytes | memoryview) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


def write_chunks(txn: Any, db: Any, data: bytes, chunk_size: int, old_chunks: int) -> int:
    """Replace the stored snapshot with ``data``; returns the number of chunks written."""
    view = memoryview(data)
    count = 0
    for start in range(0, len(view), chunk_size):
        txn.put(codec.u64_key(count), view[start : start + chunk_size], db=db)
        count += 1
    for stale in range(count, old_chunks):
        txn.delete(codec.u64_key(stale), db=db)
    return count


def read_chunks(txn: Any, db: Any, meta: StoreMeta, *, check_digest: bool = True) -> bytes | None:
    """The stored snapshot bytes (None if there is none), checked against meta.

    Opening a store passes ``check_digest=False``: the tree's own loader checks its
    header, checksum and structure anyway, and hashing 50 MB again costs a third of
    the open time. ``sufdec verify`` keeps the digest check.
    """
    if meta.snapshot_chunks == 0:
        return None
    parts = []
    for i in range(meta.snapshot_chunks):
        part = txn.get(codec.u64_key(i), db=db)
        if part is None:
            raise StoreCorruptError(f"snapshot chunk {i} of {meta.snapshot_chunks} is missing")
        parts.append(part)
    data = b"".join(parts)
    if len(data) != meta.snapshot_bytes or (check_digest and digest(data) != meta.snapshot_digest):
        raise StoreCorruptError("the tree snapshot fails its digest check; run `sufdec verify --repair`")
    return data
