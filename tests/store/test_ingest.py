from __future__ import annotations

import io
import json
import random
import sys
from pathlib import Path

import pytest

from sufdec.store import MalformedLineError, Store, StoreConfig
from sufdec.store.ingest import IngestSummary, ingest_jsonl
from sufdec.store.verify import verify

from .helpers import TOK, VOCAB, encode


def write_jsonl(path: Path, rows: list[object]) -> Path:
    lines = [r if isinstance(r, (str, bytes)) else json.dumps(r) for r in rows]
    path.write_bytes(b"\n".join(x if isinstance(x, bytes) else x.encode() for x in lines) + b"\n")
    return path


def stored(store: Store) -> list[list[int]]:
    return [s.tokens for s in store.iter_sequences()]


def ids(text: str) -> list[int]:
    return list(text.encode())


def run(store: Store, source, **kw) -> IngestSummary:
    return ingest_jsonl(store, source, encode=encode, vocab_size=VOCAB, **kw)


def test_every_record_shape(tmp_path: Path) -> None:
    rows = [
        {"text": "plain text"},
        {"prompt": "Q1", "completion": "completion one"},
        {"prompt": "Q2", "response": "response two"},
        {"prompt": "Q3", "output": "output three"},
        {
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "first turn"},
                {"role": "user", "content": "more"},
                {
                    "role": "assistant",
                    "content": [{"type": "text", "text": "second "}, {"type": "text", "text": "turn"}],
                },
                {"role": "assistant", "content": None, "tool_calls": []},
            ]
        },
        {"token_ids": [5, 6, 7, 255]},
    ]
    with Store.open(tmp_path / "s", TOK) as store:
        summary = run(store, write_jsonl(tmp_path / "in.jsonl", rows))
        assert summary.records_added == 7 and summary.skipped == 0 and summary.problems == ()
        assert stored(store) == [
            ids("plain text"),
            ids("completion one"),
            ids("response two"),
            ids("output three"),
            ids("first turn"),
            ids("second turn"),
            [5, 6, 7, 255],
        ]
        assert summary.tokens_added == sum(map(len, stored(store)))
        first_turn = store.get(4)
        assert first_turn.source["line"] == 5 and first_turn.source["turn"] == 2
        assert first_turn.source["file"].endswith("in.jsonl")
        assert store.stats().log_length == 0  # checkpointed at the end
        assert len(store.tree) == 7


def test_field_option(tmp_path: Path) -> None:
    rows = [
        {"answer": "forty two", "text": "ignored"},
        {"answer": [1, 2, 3]},
        {"answer": [{"role": "assistant", "content": "chat"}]},
        {"text": "no answer"},
    ]
    with Store.open(tmp_path / "s", TOK) as store:
        summary = run(store, write_jsonl(tmp_path / "in.jsonl", rows), field="answer")
        assert stored(store) == [ids("forty two"), [1, 2, 3], ids("chat")]
        assert [(p.line, p.reason) for p in summary.problems] == [(4, "missing field 'answer'")]


def test_malformed_lines_reported_and_skipped(tmp_path: Path) -> None:
    rows = [
        {"text": "good one"},
        "{not json",
        "[1, 2]",
        b'{"text": "bad \xff byte"}',
        {"prompt": "only a prompt"},
        {"token_ids": [1, 256]},
        {"token_ids": [1, -1]},
        {"token_ids": [1, 2.5]},
        {"token_ids": [True]},
        {"token_ids": "123"},
        {"text": ""},
        {"text": 12},
        {"token_ids": []},
        {"messages": [{"role": "user", "content": "no reply"}]},
        "",
        {"text": "good two"},
    ]
    with Store.open(tmp_path / "s", TOK) as store:
        summary = run(store, write_jsonl(tmp_path / "in.jsonl", rows))
        assert stored(store) == [ids("good one"), ids("good two")]
        reasons = {p.line: p.reason for p in summary.problems}
        assert sorted(reasons) == list(range(2, 15)) and summary.skipped == 13
        assert reasons[2].startswith("invalid JSON")
        assert reasons[3] == "expected a JSON object, got an array"
        assert reasons[4].startswith("invalid UTF-8")
        assert reasons[5].startswith("no output field")
        assert "outside the vocabulary (size 256)" in reasons[6] and "token_ids[1]" in reasons[6]
        assert "outside the vocabulary" in reasons[7]
        assert "is not a token id" in reasons[8] and "is not a token id" in reasons[9]
        assert "must be an array" in reasons[10]
        assert reasons[11] == "empty output" and reasons[13] == "empty output"
        assert reasons[12] == "text must be a string, not a number"
        assert "no assistant message" in reasons[14]
        assert summary.lines_read == 16


def test_problem_list_is_capped(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s", TOK) as store:
        summary = run(store, write_jsonl(tmp_path / "in.jsonl", ["nope"] * 5), max_problems=2)
        assert summary.skipped == 5 and [p.line for p in summary.problems] == [1, 2]
        assert summary.records_added == 0


def test_strict_aborts_without_half_batch(tmp_path: Path) -> None:
    rows = [{"text": f"record {i}"} for i in range(7)] + ["{broken"] + [{"text": "after"}]
    cfg = StoreConfig(txn_records=5)
    with Store.open(tmp_path / "s", TOK, config=cfg) as store:
        with pytest.raises(MalformedLineError, match="line 8: invalid JSON") as info:
            run(store, write_jsonl(tmp_path / "in.jsonl", rows), strict=True, encode_batch_size=1)
        assert info.value.line == 8
        # the first full transaction (5 records) is committed; records 5-6 were not
        assert stored(store) == [ids(f"record {i}") for i in range(5)]
        assert verify(store) == []


def test_duplicates_and_rerun(tmp_path: Path) -> None:
    rows = [{"text": "same"}, {"completion": "same"}, {"token_ids": ids("same")}, {"text": "other"}]
    path = write_jsonl(tmp_path / "in.jsonl", rows)
    with Store.open(tmp_path / "s", TOK) as store:
        first = run(store, path)
        assert (first.records_added, first.duplicates) == (2, 2)
        again = run(store, path)
        assert (again.records_added, again.duplicates, again.tokens_added) == (0, 4, 0)
        assert len(store) == 2 and store.stats().snapshot_log_pos == 2


def test_streams_and_progress(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = "".join(json.dumps({"text": f"line {i}"}) + "\n" for i in range(10))
    calls: list[tuple] = []
    with Store.open(tmp_path / "s", TOK) as store:
        summary = run(store, io.StringIO(text), on_progress=lambda *a: calls.append(a), encode_batch_size=3)
        assert summary.records_added == 10 and summary.bytes_read == len(text)
        assert calls[-1] == (10, summary.tokens_added, len(text), None) and len(calls) >= 4
        assert store.get(0).source["file"] == "<stdin>"

        more = text.replace("line", "bytes")
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(more.encode())))
        assert run(store, "-").records_added == 10

        path = tmp_path / "f.jsonl"
        path.write_text(text.replace("line", "file"))
        calls.clear()
        run(store, path, on_progress=lambda *a: calls.append(a))
        assert calls[-1][2:] == (path.stat().st_size, path.stat().st_size)
        with path.open("rb") as handle:  # an open binary file: total bytes known
            calls.clear()
            run(store, handle, on_progress=lambda *a: calls.append(a))
            assert calls[-1][3] == path.stat().st_size


def test_encoder_gets_batches(tmp_path: Path) -> None:
    sizes: list[int] = []

    def counting(texts: list[str]) -> list[list[int]]:
        sizes.append(len(texts))
        return encode(texts)

    rows = [{"text": f"t{i}"} for i in range(10)] + [{"token_ids": [1]}]
    with Store.open(tmp_path / "s", TOK) as store:
        ingest_jsonl(
            store, write_jsonl(tmp_path / "in.jsonl", rows), encode=counting, vocab_size=VOCAB, encode_batch_size=4
        )
        assert sizes == [4, 4, 2]
        assert stored(store)[-1] == [1]  # file order is kept


def test_output_that_encodes_to_nothing(tmp_path: Path) -> None:
    def dropping(texts: list[str]) -> list[list[int]]:
        return [[] if t == "drop" else list(t.encode()) for t in texts]

    rows = [
        {"text": "keep"},
        {"text": "drop"},
        {"messages": [{"role": "assistant", "content": "x"}, {"role": "assistant", "content": "drop"}]},
    ]
    with Store.open(tmp_path / "s", TOK) as store:
        summary = ingest_jsonl(store, write_jsonl(tmp_path / "in.jsonl", rows), encode=dropping, vocab_size=VOCAB)
        assert stored(store) == [ids("keep")]
        assert [(p.line, p.reason) for p in summary.problems] == [
            (2, "output encodes to no tokens"),
            (3, "output encodes to no tokens"),
        ]


def test_bom_and_long_line(tmp_path: Path) -> None:
    long_text = "".join(random.Random(0).choices("abcdefghij klmnop", k=2_000_000))  # one 2 MB line
    path = tmp_path / "in.jsonl"
    path.write_bytes(
        b"\xef\xbb\xbf"
        + json.dumps({"text": "bom"}).encode()
        + b"\n"
        + json.dumps({"text": long_text}).encode()
        + b"\n"
    )
    with Store.open(tmp_path / "s", TOK) as store:
        summary = run(store, path, checkpoint=False)
        assert summary.records_added == 2 and summary.tokens_added == 3 + len(long_text)
        assert store.get(1).tokens == ids(long_text)


def test_a_tokenizer_failure_is_a_skipped_line(tmp_path: Path) -> None:
    """Issue 12, item 2: whatever the encoder raises for one text (a TypeError, a ValueError,
    ids that are not ints) costs that line only, reported with its number."""

    def picky(texts: list[str]) -> list[list[int]]:
        out = []
        for t in texts:
            if "boom" in t:
                raise TypeError("cannot encode this")
            out.append(["x"] if "junk" in t else list(t.encode()))
        return out

    src = write_jsonl(
        tmp_path / "in.jsonl", [{"text": "fine one"}, {"text": "boom"}, {"text": "junk ids"}, {"text": "fine two"}]
    )
    with Store.open(tmp_path / "s", TOK) as store:
        summary = ingest_jsonl(store, src, encode=picky, vocab_size=VOCAB)
        assert summary.records_added == 2 and summary.skipped == 2
        assert [p.line for p in summary.problems] == [2, 3]
        assert "TypeError" in summary.problems[0].reason
        assert stored(store) == [ids("fine one"), ids("fine two")]


def test_the_count_after_a_write_error_is_exact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 20 item 6: when a later transaction of one batch fails (a full disk, a file
    size limit), the earlier ones stay, and the figure the user reads counts them."""
    from sufdec.store import StoreFullError

    turns = [{"role": "assistant", "content": f"answer number {i}"} for i in range(10)]
    src = write_jsonl(tmp_path / "in.jsonl", [{"messages": turns}])  # one line, ten outputs
    commits = []
    real = Store._commit

    def failing(self, batch, auto_checkpoint=True):
        commits.append(len(batch))
        if len(commits) == 3:
            raise StoreFullError("the disk is full")
        return real(self, batch, auto_checkpoint)

    monkeypatch.setattr(Store, "_commit", failing)
    with Store.open(tmp_path / "s", TOK, config=StoreConfig(txn_records=3)) as store:
        with pytest.raises(StoreFullError) as err:
            run(store, src)
        assert len(store) == 6 == sum(commits[:2])
        assert "6 records of this run were committed before that and are kept" in str(err.value)
