"""JSONL ingest behind ``sufdec index``: read outputs line by line, tokenize them in
batches with the caller's encoder, and add them to a store a few thousand per transaction.

Accepted line shapes (the *output* goes into the tree, never the prompt):
``{"text"}``, ``{"prompt", "completion"}``, ``{"prompt", "response" | "output"}``, chat
``{"messages": [{"role", "content"}, ...]}`` (each assistant turn is one output) and
pre-tokenized ``{"token_ids": [...]}``; ``field=`` names another key (a string, a token id
list or a message list). Unusable lines are reported with their line number and skipped,
or abort the run under ``strict``. Outputs are deduplicated by the hash of their token
ids, so re-running an index adds nothing and re-running a killed one completes it.
"""

from __future__ import annotations

import io
import json
import os
import stat
import sys
import time
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, TextIO, Union

from .errors import MalformedLineError
from .records import AddSummary, SequenceRecord
from .store import Store

Encoder = Callable[[list[str]], list[list[int]]]
Progress = Callable[[int, int, int, Union[int, None]], None]
Source = Union[str, os.PathLike, BinaryIO, TextIO]

OUTPUT_KEYS = ("completion", "response", "output", "text")


@dataclass(frozen=True)
class LineProblem:
    line: int
    reason: str


@dataclass(frozen=True)
class IngestSummary:
    """What an ingest did. ``skipped`` counts malformed lines (all of them);
    ``problems`` lists the first ``max_problems`` with their reasons."""

    records_added: int = 0
    duplicates: int = 0
    skipped: int = 0
    tokens_added: int = 0
    lines_read: int = 0
    bytes_read: int = 0
    transactions: int = 0
    elapsed_s: float = 0.0
    problems: tuple[LineProblem, ...] = ()


class _Bad(Exception):
    """A line (or one output in it) cannot be used; the message is the reason."""


# ----------------------------------------------------------------------- parsing
@dataclass
class _Output:
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
        raise _Bad(f"{where} must be an array of token ids, not {_type_name(value)}")
    if not value:
        raise _Bad("empty output")
    try:
        if any(v.__class__ is bool for v in value):
            raise TypeError
        tokens = array("i", value)
    except (TypeError, OverflowError):
        bad = next(i for i, v in enumerate(value) if v.__class__ is not int or not 0 <= v < vocab_size)
        raise _Bad(f"{where}[{bad}] = {json.dumps(value[bad])[:40]} is not a token id") from None
    low, high = min(tokens), max(tokens)
    if low < 0 or high >= vocab_size:
        bad = next(i for i, v in enumerate(tokens) if not 0 <= v < vocab_size)
        raise _Bad(f"{where}[{bad}] = {tokens[bad]} is outside the vocabulary (size {vocab_size})")
    return tokens


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise _Bad(f"{where} must be a string, not {_type_name(value)}")
    if not value:
        raise _Bad("empty output")
    return value


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
    raise _Bad("an assistant message's content must be a string or a list of text parts")


def _assistant_turns(value: Any, where: str, line: int) -> list[_Output]:
    if not isinstance(value, list):
        raise _Bad(f"{where} must be an array of messages, not {_type_name(value)}")
    outputs = []
    for turn, message in enumerate(value):
        if not isinstance(message, dict):
            raise _Bad(f"{where}[{turn}] must be an object, not {_type_name(message)}")
        if message.get("role") == "assistant":
            text = _content_text(message.get("content"))
            if text:
                outputs.append(_Output(line, turn, text=text))
    if not outputs:
        raise _Bad(f"{where} has no assistant message with text")
    return outputs


def _from_value(value: Any, key: str, line: int, vocab_size: int) -> list[_Output]:
    if isinstance(value, list) and value and all(isinstance(m, dict) for m in value):
        return _assistant_turns(value, key, line)
    if isinstance(value, list):
        return [_Output(line, None, tokens=_token_ids(value, key, vocab_size))]
    return [_Output(line, None, text=_text(value, key))]


def parse_line(raw: bytes | str, line: int, vocab_size: int, field: str | None = None) -> list[_Output]:
    """The outputs one JSONL line holds; raises ``_Bad`` with the reason if none."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _Bad(f"invalid UTF-8 at byte {exc.start}") from None
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise _Bad(f"invalid JSON: {exc.msg} at column {exc.colno}") from None
    except RecursionError:
        raise _Bad("invalid JSON: nested too deeply") from None
    if not isinstance(obj, dict):
        raise _Bad(f"expected a JSON object, got {_type_name(obj)}")
    if field is not None:
        if field not in obj:
            raise _Bad(f"missing field {field!r}")
        return _from_value(obj[field], field, line, vocab_size)
    if "token_ids" in obj:
        return [_Output(line, None, tokens=_token_ids(obj["token_ids"], "token_ids", vocab_size))]
    if "messages" in obj:
        return _assistant_turns(obj["messages"], "messages", line)
    for key in OUTPUT_KEYS:
        if key in obj:
            return [_Output(line, None, text=_text(obj[key], key))]
    raise _Bad("no output field (expected one of text, completion, response, output, messages, token_ids)")


# ----------------------------------------------------------------------- reading
MAX_LINE_BYTES = 16 << 20


@dataclass(frozen=True)
class _TooLong:
    """A line longer than the limit: skipped without ever holding it in memory."""

    size: int


def _bounded_lines(stream: Any, limit: int) -> Iterator[bytes | str | _TooLong]:
    """Lines of ``stream``; a line over ``limit`` is read in ``limit``-sized pieces,
    dropped, and reported as ``_TooLong`` (memory stays O(limit) for any input)."""
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
        yield _TooLong(size)


def _open_lines(source: Source, limit: int) -> tuple[Iterator[bytes | str | _TooLong], str, int | None, Callable[[], None]]:
    """(line iterator, display name, total bytes or None, close)."""
    if isinstance(source, (str, os.PathLike)) and str(source) != "-":
        path = Path(source)
        handle = path.open("rb")
        return _bounded_lines(handle, limit), str(path), path.stat().st_size, handle.close
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


# ----------------------------------------------------------------------- ingest
@dataclass
class _Run:
    store: Store
    encode: Encoder
    file: str
    strict: bool
    max_problems: int
    on_progress: Progress | None
    total_bytes: int | None
    pending: list[_Output] = field(default_factory=list)  # parsed, not yet tokenized
    pending_chars: int = 0
    pending_texts: int = 0
    ready: list[SequenceRecord] = field(default_factory=list)  # tokenized, not yet committed
    ready_tokens: int = 0
    added: AddSummary = AddSummary()
    skipped: int = 0
    problems: list[LineProblem] = field(default_factory=list)
    bytes_read: int = 0

    def problem(self, line: int, reason: str) -> None:
        if self.strict:
            raise MalformedLineError(line, reason)
        self.skipped += 1
        if len(self.problems) < self.max_problems:
            self.problems.append(LineProblem(line, reason))

    def tokenize(self) -> None:
        """Encode the pending texts in one batch and move every pending output to ``ready``."""
        texts = [o.text for o in self.pending if o.text is not None]
        batch = self.encode(texts) if texts else []
        if len(batch) != len(texts):
            raise ValueError(f"the encoder returned {len(batch)} token lists for {len(texts)} texts")
        encoded = iter(batch)
        bad_lines: set[int] = set()
        outputs = []
        for out in self.pending:
            tokens = out.tokens if out.text is None else next(encoded)
            if len(tokens) == 0:
                if out.line not in bad_lines:
                    bad_lines.add(out.line)
                    self.problem(out.line, "output encodes to no tokens")
                continue
            outputs.append((out, tokens))
        for out, tokens in outputs:
            if out.line in bad_lines:
                continue  # a line counts once: skipped whole, or used whole
            source: dict[str, Any] = {"file": self.file, "line": out.line}
            if out.turn is not None:
                source["turn"] = out.turn
            self.ready.append(SequenceRecord(tokens, source))
            self.ready_tokens += len(tokens)
        self.pending, self.pending_chars, self.pending_texts = [], 0, 0

    def commit(self) -> None:
        if self.ready:
            self.added += self.store.add_many(self.ready, auto_checkpoint=False)
            self.ready, self.ready_tokens = [], 0
        self.report()

    def report(self) -> None:
        if self.on_progress is not None:
            done = self.added.added + self.added.duplicates
            self.on_progress(done, self.added.tokens_added, self.bytes_read, self.total_bytes)


def ingest_jsonl(
    store: Store,
    source: Source,
    *,
    encode: Encoder,
    vocab_size: int,
    field: str | None = None,
    strict: bool = False,
    on_progress: Progress | None = None,
    encode_batch_size: int = 256,
    max_problems: int = 100,
    checkpoint: bool = True,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> IngestSummary:
    """Add every output in a JSONL file (a path, ``"-"`` for stdin, or an open stream).

    ``encode`` tokenizes a list of texts at once (it gets up to ``encode_batch_size``);
    ``vocab_size`` bounds pre-tokenized ids. ``on_progress(records_done, tokens_added,
    bytes_read, total_bytes)`` is called after each batch (``total_bytes`` is None for a
    pipe). Under ``strict`` the first malformed line raises ``MalformedLineError`` and
    the records not yet committed are dropped (earlier transactions stay). Ends with a
    checkpoint when anything was added (``checkpoint=False`` to skip it). A line longer
    than ``max_line_bytes`` is reported and skipped without being held in memory.
    """
    started = time.perf_counter()
    lines, name, total, close = _open_lines(source, max_line_bytes)
    cfg = store.config
    run = _Run(store, encode, name, strict, max_problems, on_progress, total)
    line_no = 0
    try:
        for line_no, raw in enumerate(lines, 1):
            if isinstance(raw, _TooLong):
                run.bytes_read += raw.size
                run.problem(line_no, f"line is {raw.size:,} bytes, over the {max_line_bytes:,}-byte limit")
                continue
            run.bytes_read += len(raw) if isinstance(raw, bytes) else len(raw.encode("utf-8", "surrogatepass"))
            if line_no == 1:
                raw = raw.lstrip(b"\xef\xbb\xbf" if isinstance(raw, bytes) else "\ufeff")
            if not raw.strip():
                continue
            try:
                outputs = parse_line(raw, line_no, vocab_size, field)
            except _Bad as exc:
                run.problem(line_no, str(exc))
                continue
            del raw
            run.pending.extend(outputs)
            run.pending_chars += sum(len(o.text) if o.text is not None else len(o.tokens) for o in outputs)
            run.pending_texts += sum(o.text is not None for o in outputs)
            if run.pending_texts >= encode_batch_size or run.pending_chars >= 8 * cfg.txn_tokens or len(run.pending) >= cfg.txn_records:
                run.tokenize()
                if len(run.ready) >= cfg.txn_records or run.ready_tokens >= cfg.txn_tokens:
                    run.commit()
                else:
                    run.report()
        run.tokenize()
        run.commit()
    finally:
        close()
    if checkpoint and run.added.added:
        store.checkpoint()
    return IngestSummary(
        records_added=run.added.added,
        duplicates=run.added.duplicates,
        skipped=run.skipped,
        tokens_added=run.added.tokens_added,
        lines_read=line_no,
        bytes_read=run.bytes_read,
        transactions=run.added.transactions,
        elapsed_s=time.perf_counter() - started,
        problems=tuple(run.problems),
    )
