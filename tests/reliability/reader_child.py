"""A reader process for the many-processes test: drafts from a store while others write.

usage: python reader_child.py STORE TARGET TIMEOUT_S
Opens the store read-only once, prints "ready", then loops: refresh(), check every newly
visible sequence against its content hash, draft from the tree with a stored sequence's
head as context. Stops when it sees TARGET sequences (or at the timeout) and prints one
JSON line: the sequence counts it saw, drafts made, and any problem.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sufdec.store import Store, codec  # noqa: E402


def main() -> None:
    path, target, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    store = Store.open(path, readonly=True, create=False)
    store.tree
    print("ready", flush=True)
    counts: list[int] = []
    problems: list[str] = []
    drafts = nonempty = refreshes = 0
    next_id = 0
    contexts: list[list[int]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        store.refresh()
        refreshes += 1
        for seq in store.iter_sequences(next_id):
            if codec.content_hash(codec.token_bytes(codec.to_token_array(seq.tokens))) != seq.content_hash:
                problems.append(f"sequence {seq.seq_id} does not match its hash")
            next_id = seq.seq_id + 1
            if len(contexts) < 64:
                contexts.append(seq.tokens[:4])
        tree = store.tree
        n = len(tree)
        if not counts or counts[-1] != n:
            counts.append(n)
        if counts[-1] < (counts[-2] if len(counts) > 1 else 0):
            problems.append(f"the tree shrank from {counts[-2]} to {n} sequences")
        for ctx in contexts[refreshes % 8 :: 8]:
            drafts += 1
            nonempty += len(tree.speculate(ctx)) > 0
        if n >= target:
            break
        time.sleep(0.005)
    if len(store.tree) != len(store):
        problems.append(f"tree has {len(store.tree)} sequences, the store {len(store)}")
    store.close()
    print(
        json.dumps(
            {
                "counts": counts,
                "refreshes": refreshes,
                "drafts": drafts,
                "nonempty": nonempty,
                "seen": next_id,
                "problems": problems,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
