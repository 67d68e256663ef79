"""The store's read paths: look a sequence up by id or by its tokens, page through the
stored sequences, count them, and gather the figures behind ``sufdec stats``.

Each function is the body of one short read transaction (or, for ``stats``, one plus a
look at the files); none of them loads the tree. Readers never block the writer.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from . import codec
from . import meta as meta_mod
from .env import DATA_FILE, LOCK_FILE, Dbs, StoreEnv
from .records import StoredSequence, StoreStats


def get(txn: Any, dbs: Dbs, seq_id: int) -> StoredSequence | None:
    """One stored sequence, or None."""
    value = txn.get(codec.u64_key(seq_id), db=dbs.sequences)
    return None if value is None else StoredSequence.decode(seq_id, value)


def find(txn: Any, dbs: Dbs, tokens: Sequence[int]) -> int | None:
    """The id of the stored sequence with exactly these tokens, or None."""
    digest = codec.content_hash(codec.token_bytes(codec.to_token_array(tokens)))
    value = txn.get(digest, db=dbs.hashes)
    return None if value is None else codec.key_u64(value)


def page(txn: Any, dbs: Dbs, start: int, batch: int) -> list[StoredSequence]:
    """Up to ``batch`` stored sequences with id >= ``start``, in id order."""
    cursor = txn.cursor(db=dbs.sequences)
    out: list[StoredSequence] = []
    if not cursor.set_range(codec.u64_key(start)):
        return out
    for key, value in cursor:
        out.append(StoredSequence.decode(codec.key_u64(key), value))
        if len(out) >= batch:
            break
    return out


def count(txn: Any, dbs: Dbs) -> int:
    """How many sequences are stored."""
    return int(txn.stat(dbs.sequences)["entries"])


def stats(senv: StoreEnv) -> StoreStats:
    """Counts and sizes of the store (does not load the tree)."""
    dbs = senv.dbs

    def read(txn: Any) -> tuple[meta_mod.StoreMeta, int, dict[str, int], int]:
        meta = meta_mod.read_meta(txn, dbs.meta)
        return meta, count(txn, dbs), senv.env.info(), int(txn.stat(dbs.meta)["psize"])

    meta, sequences, info, page_size = senv.read(read)
    return StoreStats(
        path=str(senv.path),
        sequences=sequences,
        tokens=meta.total_tokens,
        disk_bytes=disk_bytes(senv.path),
        map_size=int(info["map_size"]),
        used_bytes=(int(info["last_pgno"]) + 1) * page_size,
        page_size=page_size,
        tokenizer_name=meta.tokenizer_name,
        tokenizer_fingerprint=meta.tokenizer_fingerprint,
        format_version=meta.format_version,
        created=meta.created,
        max_depth=meta.max_depth,
        log_length=meta.log_length,
        log_tokens=meta.log_tokens,
        snapshot_bytes=meta.snapshot_bytes,
        snapshot_log_pos=meta.snapshot_log_pos,
        max_tokens=meta.max_tokens,
        max_bytes=meta.max_bytes,
        eviction=meta.eviction,
    )


def disk_bytes(path: Path) -> int:
    """The size of the store's LMDB files (data and lock) on disk."""
    return sum((path / name).stat().st_size for name in (DATA_FILE, LOCK_FILE) if (path / name).exists())


def source_of(source: dict) -> str:
    """The kind of writer a record's source metadata names: its ``from`` (``generate``,
    ``vllm``, ...), ``index`` for records read from a file, ``shared by HOST`` for an output
    another host published (``sufdec.share``), else ``unknown``."""
    if isinstance(source, dict):
        if source.get("from") == "share" and source.get("host"):
            return f"shared by {source['host']}"
        if source.get("from"):
            return str(source["from"])
        if "file" in source:
            return "index"
    return "unknown"


def count_sources(sequences: Iterable[StoredSequence]) -> dict[str, dict[str, int]]:
    """Records and tokens per writer kind (see ``source_of``), most records first."""
    counts: dict[str, dict[str, int]] = {}
    for seq in sequences:
        slot = counts.setdefault(source_of(seq.source), {"sequences": 0, "tokens": 0})
        slot["sequences"] += 1
        slot["tokens"] += len(seq.tokens)
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]["sequences"]))
