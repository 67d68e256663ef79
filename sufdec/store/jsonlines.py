"""Reading JSONL outputs for ``ingest``: lines of any length in bounded memory, and the
outputs one line holds.

Accepted line shapes (the *output* goes into the tree, never the prompt):
``{"text"}``, ``{"prompt", "completion"}``, ``{"prompt", "response" | "output"}``, chat
``{"messages": [{"role", "content"}, ...]}`` (each assistant turn is one output) and
pre-tokenized ``{"token_ids": [...]}``; ``field=`` names another key. ``parse_line``
raises ``Bad`` with the reason a line is unusable: invalid UTF-8 or JSON (an integer of
more than 4,300 digits included), a lone surrogate in a text, token ids out of range.
"""

from __future__ import annotations

import io
import json
import os
import stat
import sys
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TextIO, Union

Source = Union[str, os.PathLike, BinaryIO, TextIO]
OUTPUT_KEYS = ("completion", "response", "output", "text")


class Bad(Exception):
    """A line (or one output in it) cannot be used; the message is the reason."""


# ----------------------------------------------------------------------- parsing
@dataclass
class Output:
    line: int
    turn: int | None
    text: str | None = None
    tokens: array | None = None


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )


def _token_ids(value: Any, where: str, vocab_size: int) -> array:
    if not isinstance(value, list):
        raise Bad(f"{where} must be an array of token ids, not {_type_name(value)}")
    if not value:
        raise Bad("empty output")
    try:
        if any(v.__class__ is bool for v in value):
            raise TypeError
        tokens = array("i", value)
    except (TypeError, OverflowError):
        bad = next(i for i, v in enumerate(value) if v.__class__ is not int or not 0 <= v < vocab_size)
        raise Bad(f"{where}[{bad}] = {json.dumps(value[bad])[:40]} is not a token id") from None
    low, high = min(tokens), max(tokens)
    if low < 0 or high >= vocab_size:
        bad = next(i for i, v in enumerate(tokens) if not 0 <= v < vocab_size)
        raise Bad(f"{where}[{bad}] = {tokens[bad]} is outside the vocabulary (size {vocab_size})")
    return tokens


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise Bad(f"{where} must be a string, not {_type_name(value)}")
    if not value:
        raise Bad("empty output")
    return _unicode(value, where)


def _unicode(text: str, where: str) -> str:
    """``text`` if it is valid Unicode; JSON's ``\\ud800`` escapes make lone surrogates
    that no UTF-8 tokenizer accepts."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise Bad(
            f"{where} holds a lone surrogate (\\u{ord(text[exc.start]):04x} at character "
            f"{exc.start + 1}), which is not valid Unicode text"
        ) from None
    return text


def _content_text(content: Any) -> str:
    """A chat message's text: a string, or the text parts of a content-part list."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type", "text") == "text"]
        if all(isinstance(p, str) for p in parts):
            return "".join(parts)
    raise Bad("an assistant message's content must be a string or a list of text parts")


def _assistant_turns(value: Any, where: str, line: int) -> list[Output]:
    if not isinstance(value, list):
        raise Bad(f"{where} must be an array of messages, not {_type_name(value)}")
    outputs = []
    for turn, message in enumerate(value):
        if not isinstance(message, dict):
            raise Bad(f"{where}[{turn}] must be an object, not {_type_name(message)}")
        if message.get("role") == "assistant":
            text = _unicode(_content_text(message.get("content")), f"{where}[{turn}].content")
            if text:
                outputs.append(Output(line, turn, text=text))
    if not outputs:
        raise Bad(f"{where} has no assistant message with text")
    return outputs


def _from_value(value: Any, key: str, line: int, vocab_size: int) -> list[Output]:
    if isinstance(value, list) and value and all(isinstance(m, dict) for m in value):
        return _assistant_turns(value, key, line)
    if isinstance(value, list):
        return [Output(line, None, tokens=_token_ids(value, key, vocab_size))]
    return [Output(line, None, text=_text(value, key))]


def parse_line(raw: bytes | str, line: int, vocab_size: int, field: str | None = None) -> list[Output]:
    """The outputs one JSONL line holds; raises ``Bad`` with the reason if none."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise Bad(f"invalid UTF-8 at byte {exc.start}") from None
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as exc:
        msg = exc.msg[:-3] if exc.msg.endswith(" at") else exc.msg  # "Unterminated string starting at"
        raise Bad(f"invalid JSON: {msg} at column {exc.colno}") from None
    except RecursionError:
        raise Bad("invalid JSON: nested too deeply") from None
    except ValueError as exc:  # an integer beyond Python's int-conversion limit, say
        digits = "digits" in str(exc)
        raise Bad(
            "invalid JSON: a number of more than 4,300 digits (Python's int-conversion limit)"
            if digits
            else f"invalid JSON: {exc}"[:200]
        ) from None
    if not isinstance(obj, dict):
        raise Bad(f"expected a JSON object, got {_type_name(obj)}")
    if field is not None:
        if field not in obj:
            raise Bad(f"missing field {field!r}")
        return _from_value(obj[field], field, line, vocab_size)
    if "token_ids" in obj:
        return [Output(line, None, tokens=_token_ids(obj["token_ids"], "token_ids", vocab_size))]
    if "messages" in obj:
        return _assistant_turns(obj["messages"], "messages", line)
    for key in OUTPUT_KEYS:
        if key in obj:
            return [Output(line, None, text=_text(obj[key], key))]
    raise Bad("no output field (expected one of text, completion, response, output, messages, token_ids)")


# ----------------------------------------------------------------------- reading
MAX_LINE_BYTES = 16 << 20


@dataclass(frozen=True)
class TooLong:
    """A line longer than the limit: skipped without ever holding it in memory."""

    size: int


def _bounded_lines(stream: Any, limit: int) -> Iterator[bytes | str | TooLong]:
    """Lines of ``stream``; a line over ``limit`` is read in ``limit``-sized pieces,
    dropped, and reported as ``TooLong`` (memory stays O(limit) for any input)."""
    while True:
        line = stream.readline(limit + 1)
        if not line:
            return
        if len(line) <= limit or line[-1:] in (b"\n", "\n"):
            yield line
            continue
        size = len(line)
        while line and line[-1:] not in (b"\n", "\n"):
            line = stream.readline(limit)
            size += len(line)
        yield TooLong(size)


def open_lines(
    source: Source, limit: int
) -> tuple[Iterator[bytes | str | TooLong], str, int | None, Callable[[], None]]:
    """(line iterator, display name, total bytes or None, close)."""
    if isinstance(source, (str, os.PathLike)) and str(source) != "-":
        path = Path(source)
        handle = path.open("rb")  # a regular file, or a FIFO / `<(cmd)` pipe (no size, read as it comes)
        st = os.fstat(handle.fileno())
        total = st.st_size if stat.S_ISREG(st.st_mode) else None
        return _bounded_lines(handle, limit), str(path), total, handle.close
    stream: Any = sys.stdin if isinstance(source, (str, os.PathLike)) else source
    name = getattr(stream, "name", None)
    name = name if isinstance(name, str) and not name.startswith("<") else "<stdin>"
    stream = getattr(stream, "buffer", stream)  # bytes where possible: decode errors are per line
    total = None
    try:
        st = os.fstat(stream.fileno())
        if stat.S_ISREG(st.st_mode):
            total = st.st_size
    except (AttributeError, OSError, io.UnsupportedOperation):
        pass
    return _bounded_lines(stream, limit), name, total, lambda: None
