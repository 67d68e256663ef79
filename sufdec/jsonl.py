"""Reading small JSONL files of objects (prompt files, benchmark workloads) with line-numbered errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Iterator


def read_objects(path: Path, accept: Callable[[object], bool], expected: str) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line; ValueError names the file and line
    of the first one that is not JSON or that ``accept`` refuses (``expected`` says what was wanted)."""
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{n}: not valid JSON ({exc.msg})") from None
            if not isinstance(rec, dict) or not accept(rec):
                raise ValueError(f"{path}:{n}: expected {expected}")
            yield n, rec
