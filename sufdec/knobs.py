"""Settings fields that carry their own help and range: the one source of a setting's
default, what it means and which values it takes.

A settings dataclass declares a field with ``knob(default, help, low=..., high=...)``;
``check(settings)`` refuses a value out of range with the field's name, and the CLI builds
its option from the same field (``sufdec.cli.common.setting``: help text, the default
shown, the range checked under the option's own name). Nothing is imported here.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

Number = int | float


def knob(
    default: Any,
    help: str,
    *,
    low: Number | None = None,
    high: Number | None = None,
    low_open: bool = False,
    choices: tuple[str, ...] | None = None,
    shown: str | None = None,
) -> Any:
    """A dataclass field with ``default`` and what the CLI says of it: ``help`` (one
    sentence, no default), the range [low, high] ((low, high] with ``low_open``) or the
    ``choices``, and ``shown``: how the default reads where the value itself says little."""
    meta = {"help": help, "low": low, "high": high, "low_open": low_open, "choices": choices, "shown": shown}
    return dataclasses.field(default=default, metadata=meta)


def field_of(cls: type, name: str) -> dataclasses.Field:
    """The dataclass field ``name`` of ``cls`` (KeyError naming the class)."""
    for f in dataclasses.fields(cls):
        if f.name == name:
            return f
    raise KeyError(f"{cls.__name__} has no setting {name!r}")


def problem(value: Any, meta: Any) -> str | None:
    """Why ``value`` is outside a knob's range or choices ("must be ..."), None when it fits
    (None itself always fits: a setting left out)."""
    if value is None or not meta:
        return None
    choices = meta.get("choices")
    if choices is not None:
        return None if value in choices else f"must be one of {', '.join(choices)}, not {value!r}"
    low, high, low_open = meta.get("low"), meta.get("high"), meta.get("low_open", False)
    if low is None and high is None:
        return None
    finite = not isinstance(value, float) or math.isfinite(value)
    above = low is None or (value > low if low_open else value >= low)
    below = high is None or value <= high
    if finite and above and below:
        return None
    return f"must be {span(low, high, low_open)}, not {value!r}"


def span(low: Number | None, high: Number | None, low_open: bool = False) -> str:
    """A range in words: "in [0, 1]", ">= 1", "a whole number from 1 to 10"."""
    if low is not None and high is not None:
        if isinstance(low, int) and isinstance(high, int) and not low_open:
            return f"a whole number from {low:,} to {high:,}"
        return f"in {'(' if low_open else '['}{low:g}, {high:g}]"
    if low is not None:
        return f"{'>' if low_open else '>='} {low:g}"
    return f"at most {high:,}"


def check(settings: Any) -> None:
    """ValueError naming the first field of ``settings`` whose value is out of its knob's range."""
    for f in dataclasses.fields(settings):
        why = problem(getattr(settings, f.name), f.metadata)
        if why is not None:
            raise ValueError(f"{f.name} {why}")


def shown_default(cls: type, name: str) -> str:
    """How the CLI shows a knob's default: its ``shown`` text, else the value."""
    f = field_of(cls, name)
    if f.metadata.get("shown"):
        return f.metadata["shown"]
    return shown_value(f.default)


def shown_value(value: Any) -> str:
    """A default as the CLI shows it (``1000`` for 1000.0, ``none`` for None)."""
    return "none" if value is None else f"{value:g}" if isinstance(value, float) else str(value)
