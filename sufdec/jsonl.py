"""Reading JSONL files of objects (prompt files, training data, benchmark workloads) the
way ``index`` reads outputs: any line length in bounded memory, errors with line numbers.

A line longer than ``LINE_LIMIT`` bytes is never held whole (``sufdec.store.jsonlines``
reads it in pieces); like a line that is not JSON, not UTF-8, nested too deep, or refused
by ``accept``, it is either skipped with its number and reason (``skipped`` given) or
refused with them (ValueError). A path may be a regular file, a FIFO or a pipe (``<(cmd)``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

from sufdec.store.jsonlines import TooLong, open_lines

LINE_LIMIT = 16 * 1024 * 1024  # bytes: the same cap as `sufdec index`
Skipped = Callable[[int, str, bool], None]  # (line number, reason, whether the line was over the limit)


def _parse(raw: bytes | str, accept: Callable[[object], bool], expected: str) -> dict:
    """The line's object, or ValueError with the reason it cannot be used."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        rec = json.loads(text)
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 (byte 0x{raw[exc.start]:02x} at byte {exc.start + 1})") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg})") from None
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    except ValueError as exc:  # an integer of more than 4,300 digits
        raise ValueError(f"not usable JSON ({exc})") from None
    if not isinstance(rec, dict) or not accept(rec):
        raise ValueError(f"expected {expected}")
    return rec


def read_objects(
    path: Path,
    accept: Callable[[object], bool],
    expected: str,
    *,
    skipped: Skipped | None = None,
    limit: int = LINE_LIMIT,
) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line. A line that cannot be used goes to
    ``skipped`` with its number and reason (which may raise to stop); without ``skipped``,
    ValueError names the file and line (``expected`` says what was wanted)."""
    lines, name, _total, close = open_lines(path, limit)
    try:
        for n, raw in enumerate(lines, 1):
            too_long = isinstance(raw, TooLong)
            if isinstance(raw, TooLong):
                why = f"line is {raw.size:,} bytes, over the {limit:,}-byte limit"
            elif not raw.strip():
                continue
            else:
                try:
                    yield n, _parse(raw, accept, expected)
                    continue
                except ValueError as exc:
                    why = str(exc)
            if skipped is None:
                raise ValueError(f"{name}:{n}: {why}")
            skipped(n, why, too_long)
    finally:
        close()
