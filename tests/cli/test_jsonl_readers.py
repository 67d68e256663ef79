"""Issue 20 items 2, 4 and 8: every JSONL reader besides `index` (generate --prompts,
train-exit --data, the benchmark's workloads) reads through ``sufdec.jsonl``: a line of any
length in bounded memory, skipped or refused with its number; FIFOs and pipes read as
streams; train-exit skips unusable lines and refuses non-finite options."""

from __future__ import annotations

import json
import os
import threading
import tracemalloc
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sufdec.cli.app import app
from sufdec.jsonl import read_objects

runner = CliRunner()


def _accept(rec) -> bool:
    return isinstance(rec.get("prompt"), str)


def test_a_long_line_is_never_held_whole(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    with open(path, "w") as f:
        f.write('{"prompt": "one"}\n')
        f.write('{"prompt": "' + "x" * 8_000_000 + '"}\n')
        f.write('{"prompt": "three"}\n')
    seen: list[tuple[int, str, bool]] = []
    tracemalloc.start()
    rows = list(
        read_objects(
            path, _accept, "a prompt", skipped=lambda n, why, long: seen.append((n, why, long)), limit=64 * 1024
        )
    )
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert [n for n, _ in rows] == [1, 3]
    assert seen == [(2, "line is 8,000,015 bytes, over the 65,536-byte limit", True)]
    assert peak < 1_000_000, peak  # pieces of 64 KiB, never the 8 MB line
    with pytest.raises(ValueError, match=r"p.jsonl:2: line is 8,000,015 bytes"):
        list(read_objects(path, _accept, "a prompt", limit=64 * 1024))


@pytest.mark.parametrize(
    "line, why",
    [
        (b"not json", "not valid JSON"),
        (b"[" * 100_000, "not valid JSON"),  # json's own limit, or a RecursionError: either way one reason
        (b'{"prompt": "\xff"}', "not UTF-8"),
        (b'{"text": "no prompt"}', "expected a prompt"),
    ],
)
def test_unusable_lines_are_named(tmp_path: Path, line: bytes, why: str) -> None:
    path = tmp_path / "p.jsonl"
    path.write_bytes(b'{"prompt": "ok"}\n' + line + b"\n")
    seen = []
    rows = list(read_objects(path, _accept, "a prompt", skipped=lambda n, w, _long: seen.append((n, w))))
    assert len(rows) == 1 and seen[0][0] == 2 and (why in seen[0][1] or "nested too deeply" in seen[0][1])


def test_generate_skips_an_over_long_prompt_line_with_its_number(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch
) -> None:
    monkeypatch.setattr(read_objects, "__kwdefaults__", {"skipped": None, "limit": 4096})
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "SELECT"}\n{"prompt": "' + "y " * 5000 + '"}\n')
    res = runner.invoke(
        app,
        [
            "generate",
            "--model",
            str(tiny_model_dir),
            "--store",
            str(tmp_path / "s"),
            "--prompts",
            str(prompts),
            "-n",
            "2",
            "--json",
            "--no-learn",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "p.jsonl:2: skipped: line is 10,015 bytes, over the 4,096-byte limit" in " ".join(res.output.split())
    assert len([x for x in res.stdout.splitlines() if x.startswith("{")]) == 1


def test_generate_reads_prompts_from_a_fifo(tmp_path: Path, tiny_model_dir: Path) -> None:
    fifo = tmp_path / "prompts"
    os.mkfifo(fifo)

    def write() -> None:
        with open(fifo, "w") as f:
            f.write('{"prompt": "SELECT"}\n{"prompt": "count"}\n')

    writer = threading.Thread(target=write)
    writer.start()
    res = runner.invoke(
        app,
        [
            "generate",
            "--model",
            str(tiny_model_dir),
            "--store",
            str(tmp_path / "s"),
            "--prompts",
            str(fifo),
            "-n",
            "2",
            "--json",
            "--no-learn",
        ],
    )
    writer.join(10)
    assert res.exit_code == 0, res.output
    assert len([json.loads(x) for x in res.stdout.splitlines() if x.startswith("{")]) == 2


def test_generate_refuses_a_missing_prompts_file_and_a_directory(tmp_path: Path) -> None:
    for path, why in ((tmp_path / "nope.jsonl", "no such file"), (tmp_path, "is a directory")):
        res = runner.invoke(app, ["generate", "--prompts", str(path)])
        assert res.exit_code == 2 and why in res.output, res.output


def test_train_exit_skips_bad_lines_and_refuses_non_finite_options(tmp_path: Path, tiny_model_dir: Path) -> None:
    res = runner.invoke(app, ["train-exit", "--model", str(tiny_model_dir), "--lr", "inf"])
    assert res.exit_code == 2 and "--lr must be >= 0, not inf" in res.output, res.output
    data = tmp_path / "d.jsonl"
    words = "select name from singer where age count"
    data.write_text(
        "not json\n" + "[" * 100_000 + "\n" + "".join(json.dumps({"text": f"{words} {i}"}) + "\n" for i in range(60))
    )
    res = runner.invoke(
        app,
        [
            "train-exit",
            "--model",
            str(tiny_model_dir),
            "--data",
            str(data),
            "--out",
            str(tmp_path / "exit"),
            "--steps",
            "2",
            "--json",
        ],
    )
    said = " ".join(res.output.split())
    assert "d.jsonl:1: skipped: not valid JSON" in said and "d.jsonl:2: skipped:" in said, said
    assert "Traceback" not in res.output


def test_train_exit_refuses_to_resume_a_damaged_or_poisoned_layer(tmp_path: Path, tiny_model_dir: Path) -> None:
    """Issue 20 items 3 and 4: a truncated weights file, garbage beside it, or non-finite
    weights: one line that says to start over with --fresh (and --fresh does)."""
    from safetensors.torch import load_file, save_file

    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"text": f"select name from singer where age {i}"}) + "\n" for i in range(60)))
    out = tmp_path / "exit"
    args = ["train-exit", "--model", str(tiny_model_dir), "--data", str(data), "--out", str(out), "--steps", "2"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    weights = next(out.glob("*.safetensors"))
    meta = next(out.glob("*.json"))
    good_w, good_m = weights.read_bytes(), meta.read_text()
    tensors = load_file(str(weights))
    poisoned = {k: v.clone().fill_(float("nan")) for k, v in tensors.items()}
    cases = [
        (lambda: weights.write_bytes(good_w[:100]), "is damaged"),
        (lambda: meta.write_text("{garbage"), "is damaged"),
        (lambda: save_file(poisoned, str(weights)), "non-finite weights"),
    ]
    for spoil, needle in cases:
        weights.write_bytes(good_w)
        meta.write_text(good_m)
        spoil()
        res = runner.invoke(app, [*args, "--steps", "3"])
        said = " ".join(res.output.split())
        assert res.exit_code == 1 and needle in said and "--fresh" in said, said
    res = runner.invoke(app, [*args, "--fresh"])
    assert res.exit_code == 0, res.output
