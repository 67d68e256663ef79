"""Store figures for ``sufdec bench tree``: inserting through LMDB, disk size, reopen time."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Sequence

from sufdec.store import SequenceRecord, Store, TokenizerInfo


def run_store_bench(corpus: Sequence[Sequence[int]], max_depth: int = 64, folder: Path | None = None) -> dict:
    """Insert ``corpus`` into a fresh store (tree + LMDB writes), checkpoint, reopen.

    ``insert_us_per_token`` covers the tree updates and the batched write transactions
    (tokenization excluded); ``open_s`` is opening the store again and loading the tree
    (snapshot + log replay), what a new process pays before its first draft.
    """
    from sufdec.store import StoreConfig

    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        path = Path(tmp) / "store"
        tok = TokenizerInfo("bench", "bench")
        cfg = StoreConfig(max_depth=max_depth)
        records = [SequenceRecord(list(map(int, s))) for s in corpus if len(s)]
        store = Store.open(path, tok, config=cfg)
        _ = store.tree  # load the (empty) tree before timing
        c0, t0 = time.process_time(), time.perf_counter()
        summary = store.add_many(records, auto_checkpoint=False)
        insert_s, insert_cpu = time.perf_counter() - t0, time.process_time() - c0
        n_tokens = summary.tokens_added  # duplicates are stored once
        t0 = time.perf_counter()
        store.checkpoint()
        checkpoint_s = time.perf_counter() - t0
        disk = store.stats().disk_bytes
        used = store.stats().used_bytes
        store.close()
        t0 = time.perf_counter()
        store = Store.open(path, tok, config=cfg)
        tree = store.tree
        open_s = time.perf_counter() - t0
        assert tree.num_tokens == n_tokens
        store.close()
    return {
        "store_records": summary.added,
        "store_duplicates": summary.duplicates,
        "store_tokens": n_tokens,
        "insert_us_per_token": insert_s * 1e6 / max(1, n_tokens),
        "insert_cpu_us_per_token": insert_cpu * 1e6 / max(1, n_tokens),
        "checkpoint_s": checkpoint_s,
        "disk_bytes_per_token": disk / max(1, n_tokens),
        "used_bytes_per_token": used / max(1, n_tokens),
        "open_s": open_s,
    }
