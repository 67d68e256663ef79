"""JSONL ingest behind ``sufdec index``: read outputs line by line, tokenize them in
batches with the caller's encoder, and add them to a store a few thousand per transaction.

Accepted line shapes (the *output* goes into the tree, never the prompt):
``{"text"}``, ``{"prompt", "completion"}``, ``{"prompt", "response" | "output"}``, chat
``{"messages": [{"role", "content"}, ...]}`` (each assistant turn is one output) and
pre-tokenized ``{"token_ids": [...]}``; ``field=`` names another key (a string, a token id
list or a message list). Every line-level failure, whatever raised it (invalid JSON or
UTF-8, a lone surrogate, an integer beyond Python's digit limit, the encoder failing on
one text), is reported with its line number and skipped, or aborts the run under
``strict`` (saying how many records were committed before). Outputs are deduplicated by
the hash of their token ids, so re-running an index adds nothing and re-running a killed
one completes it.
"""

from __future__ import annotations

import os
import time
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Union

from .errors import MalformedLineError, StoreError
from .jsonlines import MAX_LINE_BYTES, OUTPUT_KEYS, Bad, Output, Source, TooLong, open_lines, parse_line
from .records import AddSummary, SequenceRecord
from .store import Store

Encoder = Callable[[list[str]], list[list[int]]]
Progress = Callable[[int, int, int, Union[int, None]], None]

__all__ = ["MAX_LINE_BYTES", "OUTPUT_KEYS", "IngestSummary", "LineProblem", "ingest_jsonl", "parse_line"]


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
    evicted: int = 0  # stored sequences removed to keep the budget (records of this run included)
    evicted_tokens: int = 0


# ----------------------------------------------------------------------- ingest
def _ids(ids: Any) -> array:
    """An encoder's token ids as an int32 array; ValueError/TypeError/OverflowError if they are not ids."""
    tokens = array("i", ids)
    if tokens and min(tokens) < 0:
        raise ValueError("negative token ids")
    return tokens


@dataclass
class _Run:
    store: Store
    encode: Encoder
    file: str
    strict: bool
    max_problems: int
    on_progress: Progress | None
    total_bytes: int | None
    pending: list[Output] = field(default_factory=list)  # parsed, not yet tokenized
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
            raise MalformedLineError(line, reason, self.added.added)
        self.skipped += 1
        if len(self.problems) < self.max_problems:
            self.problems.append(LineProblem(line, reason))

    def tokenize(self) -> None:
        """Encode the pending texts in one batch and move every pending output to ``ready``."""
        texts = [o.text for o in self.pending if o.text is not None]
        encoded = iter(self._encode(texts))
        bad_lines: set[int] = set()
        outputs = []
        for out in self.pending:
            tokens = out.tokens if out.text is None else next(encoded)
            why = tokens if isinstance(tokens, str) else "output encodes to no tokens" if len(tokens) == 0 else None
            if why is not None:
                if out.line not in bad_lines:
                    bad_lines.add(out.line)
                    self.problem(out.line, why)
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

    def _encode(self, texts: list[str]) -> list[array | str]:
        """Token arrays for ``texts`` (one batch); where the encoder fails on the batch,
        each text alone, and a text it still fails on gets the reason as a string."""
        try:
            batch = self.encode(texts) if texts else []
            if len(batch) != len(texts):
                raise ValueError(f"the encoder returned {len(batch)} token lists for {len(texts)} texts")
            return [_ids(ids) for ids in batch]
        except (KeyboardInterrupt, StoreError):
            raise
        except Exception:  # noqa: BLE001 - find the text(s) it fails on
            pass
        out: list[array | str] = []
        for text in texts:
            try:
                out.append(_ids(self.encode([text])[0]))
            except (KeyboardInterrupt, StoreError):
                raise
            except Exception as exc:  # noqa: BLE001 - whatever the encoder raises costs one line
                out.append(f"the tokenizer failed on this output ({type(exc).__name__}: {exc})"[:300])
        return out

    def commit(self) -> None:
        if self.ready:
            try:
                self.added += self.store.add_many(self.ready, auto_checkpoint=False)
            except StoreError as exc:  # the transactions before the failing one stay: count them
                partial = getattr(exc, "partial", None)
                if partial is not None:
                    self.added += partial
                raise
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
    lines, name, total, close = open_lines(source, max_line_bytes)
    name = os.fsencode(name).decode("utf-8", "backslashreplace")  # a file name that is not UTF-8 (records keep it)
    run = _Run(store, encode, name, strict, max_problems, on_progress, total)
    line_no = 0
    try:
        line_no = _read_all(run, lines, vocab_size, field, encode_batch_size, max_line_bytes)
        if checkpoint and run.added.added:
            store.checkpoint()
    except MalformedLineError:
        raise
    except StoreError as exc:  # say what of this run is in the store
        exc.args = (f"{exc}; {run.added.added:,} records of this run were committed before that and are kept",)
        raise
    finally:
        close()
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
        evicted=run.added.evicted,
        evicted_tokens=run.added.evicted_tokens,
    )


def _read_all(
    run: _Run,
    lines: Iterator[bytes | str | TooLong],
    vocab_size: int,
    field: str | None,
    encode_batch_size: int,
    max_line_bytes: int,
) -> int:
    """Parse, tokenize and commit every line; returns the number of lines read."""
    cfg = run.store.config
    line_no = 0
    for line_no, raw in enumerate(lines, 1):
        if isinstance(raw, TooLong):
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
        except Bad as exc:
            run.problem(line_no, str(exc))
            continue
        except (RecursionError, ValueError, TypeError, OverflowError, MemoryError) as exc:
            run.problem(line_no, f"unusable line ({type(exc).__name__}: {exc})"[:300])
            continue
        del raw
        run.pending.extend(outputs)
        run.pending_chars += sum(len(o.text) if o.text is not None else len(o.tokens) for o in outputs)
        run.pending_texts += sum(o.text is not None for o in outputs)
        if (
            run.pending_texts >= encode_batch_size
            or run.pending_chars >= 8 * cfg.txn_tokens
            or len(run.pending) >= cfg.txn_records
        ):
            run.tokenize()
            if len(run.ready) >= cfg.txn_records or run.ready_tokens >= cfg.txn_tokens:
                run.commit()
            else:
                run.report()
    run.tokenize()
    run.commit()
    return line_no
