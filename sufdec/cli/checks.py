"""Command-line values checked at the boundary: each bad one is one ``error:`` line and
exit 2, before a model or a store is opened (so nothing is loaded for nothing, and no
store changes).

Ranges are checked here rather than with typer's ``min=``/``max=``: those print a
multi-line usage panel and cannot say "above 0" (an open end).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Optional, Union

from sufdec import knobs
from sufdec.cli.common import fail

Number = Union[int, float]

INT32_MAX = 2**31 - 1
SEED_MAX = 2**64 - 1  # torch's generators take seeds up to 2**64 - 1


def shown(name: Union[str, Path]) -> str:
    """A file name as a terminal can show it: bytes that are not UTF-8 (which Python keeps
    as lone surrogates) are written as ``\\xff`` instead of failing to encode."""
    return os.fsencode(str(name)).decode("utf-8", "backslashreplace")


def in_range(
    value: Optional[Number],
    flag: str,
    *,
    low: Optional[Number] = None,
    high: Optional[Number] = None,
    low_open: bool = False,
    note: str = "",
) -> None:
    """Refuse ``value`` (None passes) outside [low, high], or (low, high] with ``low_open``;
    a float must also be finite (``nan`` passes every comparison)."""
    why = knobs.problem(value, {"low": low, "high": high, "low_open": low_open})
    if why is not None:
        raise fail(f"{flag} {why}{note}", 2)


def text(value: Optional[str], flag: str) -> None:
    """Refuse text that cannot be encoded as UTF-8: a command-line byte that was not UTF-8
    (Python keeps it as a lone surrogate, \\udcXX) or a lone surrogate from JSON."""
    if value is None:
        return
    bad = re.search(r"[\ud800-\udfff]", value)
    if bad is None:
        return
    ch = ord(bad.group())
    what = (
        f"byte 0x{ch - 0xDC00:02x}, which is not UTF-8,"
        if 0xDC80 <= ch <= 0xDCFF
        else f"a lone surrogate (\\u{ch:04x}),"
    )
    raise fail(f"{flag} holds {what} at character {bad.start() + 1}; give it as UTF-8 text", 2)


def readable_stream(path: Union[str, Path], label: str, missing_hint: str = "") -> os.stat_result:
    """The stat of a JSONL source that exists and is no directory (a FIFO or a pipe is fine);
    else one line naming it by ``label``, exit 2."""
    import stat

    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise fail(f"{label}: no such file{missing_hint}", 2) from None
    except OSError as exc:
        raise fail(f"{label}: cannot read it ({exc.strerror})", 2) from None
    if stat.S_ISDIR(st.st_mode):
        raise fail(f"{label} is a directory, not a JSONL file", 2)
    return st


GENERATING_DEVICES = ("cpu", "cuda", "mps")  # meta holds no data; xla, hpu, ... are not tried


def device(spec: str) -> None:
    """Refuse a --device that is not one, or that this machine does not have (no CUDA, a
    CUDA index beyond its GPUs, no MPS), before the model loads."""
    if spec == "auto":
        return
    import torch

    try:
        dev = torch.device(spec)
    except (RuntimeError, ValueError, TypeError):
        raise fail(f"--device {spec!r} is not a device: use auto, cpu, cuda, cuda:N or mps", 2) from None
    if dev.type not in GENERATING_DEVICES:
        raise fail(
            f"--device {spec}: sufdec generates on cpu, cuda (cuda:N) or mps, not on {dev.type} "
            "devices; use --device auto",
            2,
        )
    if dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise fail("--device mps: no MPS (Apple GPU) device is available here; use --device cpu or auto", 2)
    if dev.type != "cuda":
        return
    if not torch.cuda.is_available():
        why = "this torch has no CUDA support" if torch.version.cuda is None else "no CUDA GPU is visible"
        raise fail(f"--device {spec}: no CUDA device is available ({why}); use --device cpu or auto", 2)
    count = torch.cuda.device_count()
    if dev.index is not None and dev.index >= count:
        raise fail(f"--device {spec}: this machine has {count} CUDA device(s), numbered from 0", 2)


DTYPES = ("auto", "float32", "fp32", "bfloat16", "bf16", "float16", "fp16", "half")  # the engine's names


def dtype(name: str) -> None:
    """Refuse a --dtype the engine does not know (it raised ValueError after importing torch)."""
    if name not in DTYPES:
        raise fail(f"--dtype {name!r} is not a dtype: use one of {', '.join(DTYPES)}", 2)
