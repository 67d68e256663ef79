"""Child process for the crash tests: writes to a store until it is SIGKILLed.

usage: python crash_child.py STORE DATA.jsonl ingest|append
Prints "ready" once the store is open and "p" after each step of progress (so the parent
can kill it part-way through), then "done"; exits 0 if it finishes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.store.helpers import TOK, VOCAB, encode, use_fake_tree_if_needed  # noqa: E402

use_fake_tree_if_needed()

from sufdec.store import Store, StoreConfig  # noqa: E402
from sufdec.store.ingest import ingest_jsonl  # noqa: E402

CONFIG = StoreConfig(txn_records=50, checkpoint_records=60)


def main() -> None:
    store_path, data, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    store = Store.open(store_path, TOK, config=CONFIG)
    print("ready", flush=True)
    if mode == "ingest":
        ingest_jsonl(
            store,
            data,
            encode=encode,
            vocab_size=VOCAB,
            encode_batch_size=16,
            on_progress=lambda *_: print("p", flush=True),
        )
    else:
        store.tree  # loaded: appends extend it and trigger checkpoints
        with open(data, "rb") as handle:
            for line in handle:
                if store.append(encode([json.loads(line)["text"]])[0]) is not None:
                    print("p", flush=True)
    store.close()
    print("done", flush=True)


if __name__ == "__main__":
    main()
