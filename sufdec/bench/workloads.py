"""Workloads for the generation benchmark: which prompts, split how, tokenized how.

A workload is one of the public datasets (``sufdec.bench.datasets``) or a JSONL file of
prompts with reference outputs. The split is by index, 80/20, as the replay benchmark's,
so the held-out prompts of a workload never change with ``--train``/``--eval``. Prompts
are encoded by ``sufdec.prompts.encode_prompt`` (the chat template when there is one), as
``sufdec generate`` sends them. Nothing here imports torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from sufdec.bench.datasets import Example

WORKLOADS = ("spider", "humaneval", "sharegpt")
TRAIN_FRACTION = 0.8
REFERENCE_KEYS = ("reference", "completion", "output", "response")


def read_jsonl_workload(path: Path) -> list[Example]:
    """A FILE.jsonl workload: one ``{"prompt", "reference"|"completion"|"output"|"response"}`` a line."""
    from sufdec.jsonl import read_objects

    out = []
    for n, rec in read_objects(path, lambda r: isinstance(r.get("prompt"), str), 'an object with a "prompt" string'):
        ref = next((rec[k] for k in REFERENCE_KEYS if isinstance(rec.get(k), str)), "")
        out.append(Example(str(rec.get("id", f"{path.stem}-{n}")), rec["prompt"], ref))
    if not out:
        raise ValueError(f"{path} holds no prompts")
    return out


def load_workload(name: str, train: int, eval_n: int, *, cache_root: Path) -> list[Example]:
    """All examples a run may use, in the workload's order (the split is by index).

    Public workloads are fetched under ``cache_root`` on first use.
    """
    from sufdec.bench import datasets

    if name not in WORKLOADS:
        path = Path(name).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"no workload {name!r}: use spider, humaneval, sharegpt or a JSONL file")
        return read_jsonl_workload(path)
    if name == "sharegpt":  # 17k conversations: read only as many as the split needs (+ room for skips)
        need = max(math.ceil(train / TRAIN_FRACTION), math.ceil(eval_n / (1 - TRAIN_FRACTION)), 10)
        return datasets.load(name, cache_root, limit=int(need * 1.25))
    return datasets.load(name, cache_root)


def workload_label(name: str) -> str:
    """The workload's name in results: a public workload's name, or a file's stem."""
    return name if name in WORKLOADS else Path(name).stem


def split(examples: Sequence[Any], train: int, eval_n: int) -> tuple[list[Any], list[Any]]:
    """Split by index 80/20 (as the replay benchmark does); take the first ``train`` / ``eval_n``."""
    boundary = int(len(examples) * TRAIN_FRACTION)
    if len(examples) > 1:
        boundary = min(max(boundary, 1), len(examples) - 1)
    return list(examples[:boundary][:train]), list(examples[boundary:][:eval_n])


@dataclass
class Item:
    """One example with its prompt's token ids."""

    example: Example
    prompt_ids: list[int]


def prepare_items(
    tokenizer: Any, examples: Sequence[Example], max_prompt: int, context: Optional[int], max_new: int
) -> tuple[list[Item], int]:
    """Tokenized examples, dropping those whose prompt is too long; (items, skipped)."""
    from sufdec.prompts import encode_prompt

    items, skipped = [], 0
    for ex in examples:
        ids = encode_prompt(tokenizer, ex.prompt)
        if len(ids) > max_prompt or (context is not None and len(ids) + max_new > context):
            skipped += 1
            continue
        items.append(Item(ex, ids))
    return items, skipped
