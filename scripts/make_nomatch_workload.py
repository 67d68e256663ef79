"""Write a "nothing matches" benchmark workload: a Spider store, chat prompts to decode.

The first 80% of the file (the bench's train split) are Spider questions with their gold
SQL as the reference, the last 20% are ShareGPT first turns (the bench decodes the first
--eval of them). Run the bench with ``--corpus reference`` so the store holds SQL only:
nothing the chat prompts produce was seen before, and what sufdec drafts comes from the
request's own text alone. Usage (repo root):
    .venv/bin/python scripts/make_nomatch_workload.py /tmp/nomatch.jsonl
    sufdec bench --workload /tmp/nomatch.jsonl --corpus reference --train 256 --eval 32
"""

import json
import os
import sys
from pathlib import Path

from sufdec import models
from sufdec.bench import datasets
from sufdec.bench.workloads import TRAIN_FRACTION, load_workload, split


def main(out: Path, cache_root: Path, n_train: int = 256, n_eval: int = 64) -> None:
    spider = datasets.load("spider", cache_root)[:n_train]
    # the same held-out prompts as `sufdec bench --workload sharegpt` (its eval split, in order)
    _, chat = split(load_workload("sharegpt", 256, 2 * n_eval, cache_root=cache_root), 256, 2 * n_eval)
    # short prompts only, so the bench skips none and the 80/20 boundary stays where it is
    total = round(n_train / TRAIN_FRACTION)
    chat = [c for c in chat if len(c.prompt) < 4000][: total - n_train]
    with open(out, "w", encoding="utf-8") as f:
        for ex in [*spider, *chat]:
            f.write(json.dumps({"id": ex.id, "prompt": ex.prompt, "reference": ex.reference}) + "\n")
    print(f"wrote {out}: {len(spider)} Spider train records, {len(chat)} ShareGPT prompts")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "nomatch.jsonl"), models.default_cache_root(os.environ))
