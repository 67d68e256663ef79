"""CLI inputs validated at the boundary (issue 12, item 10): each bad value is one `error:`
line and a non-zero exit, before a model loads where it can be, and no store changes.
A closed standard output ends every command quietly."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import lmdb
import pytest
from typer.testing import CliRunner

from sufdec.cli.app import app
from sufdec.store import codec
from tests.cli.test_bad_input import _without_root_override

runner = CliRunner()
REPO = Path(__file__).resolve().parents[2]
GOOD = {"text": "SELECT name FROM singer WHERE age > 30"}


def _digest(store: Path) -> str:
    return hashlib.sha256((store / "data.mdb").read_bytes()).hexdigest()


def _one_line(res, *needles: str, code: int = 1) -> str:
    """The command failed with `code` and exactly one `error:` line holding every needle."""
    errors = [x for x in res.output.splitlines() if x.startswith("error:")]
    assert res.exit_code == code and len(errors) == 1, (res.exit_code, res.output, res.exception)
    for needle in needles:
        assert needle in errors[0], res.output
    return errors[0]


@pytest.fixture
def store(tmp_path: Path, word_tokenizer_dir: Path) -> Path:
    """A store holding one record."""
    src = tmp_path / "good.jsonl"
    src.write_text(json.dumps(GOOD) + "\n")
    res = runner.invoke(
        app, ["index", str(src), "--store", str(tmp_path / "store"), "--tokenizer", str(word_tokenizer_dir)]
    )
    assert res.exit_code == 0, res.output
    return tmp_path / "store"


# ---------------------------------------------------------------- generate's options, before any model loads
@pytest.mark.parametrize(
    "args, needle",
    [
        (["--top-p", "0"], "--top-p must be in (0, 1], not 0.0"),
        (["--top-p", "nan"], "--top-p"),
        (["--repetition-penalty", "0"], "--repetition-penalty must be > 0"),
        (["--temperature", "-1"], "--temperature must be >= 0"),
        (["--temperature", "inf"], "--temperature"),
        (["--top-k", "-1"], "--top-k"),
        (["--min-p", "1.5"], "--min-p must be in [0, 1]"),
        (["--max-new-tokens", "0"], "--max-new-tokens"),
        (
            ["--max-new-tokens", "99999999999999999999999"],
            "--max-new-tokens must be a whole number from 1 to 2,147,483,647",
        ),
        (["--seed", str(2**64)], "--seed must be a whole number from 0 to 18,446,744,073,709,551,615"),
        (["--seed", "-1"], "--seed"),
        (["--max-spec-tokens", str(2**31)], "--max-spec-tokens"),
        (["--max-tokens", "99999999999999999999999"], "--max-tokens must be a whole number from 0 to"),
        (["--max-tokens", "-1"], "--max-tokens"),
        (["--dtype", "bogus"], "--dtype 'bogus' is not a dtype"),
        (["--device", "gpu0"], "--device 'gpu0' is not a device"),
        (["--device", "meta"], "--device meta: sufdec generates on cpu, cuda (cuda:N) or mps, not on meta devices"),
        (["--device", "xla"], "--device xla: sufdec generates on cpu, cuda (cuda:N) or mps, not on xla devices"),
        (["--raw", "-p", ""], "the prompt is empty"),
        (["-p", "SEL\udcffECT"], "--prompt holds byte 0xff, which is not UTF-8, at character 4"),
        (["--stop", "\ud800"], "--stop holds a lone surrogate"),
    ],
)
def test_generate_refuses_bad_values_before_loading(store: Path, tmp_path: Path, args, needle) -> None:
    """`--model` names nothing: the check must come first (it used to raise after the load)."""
    before = _digest(store)
    base = ["generate", "--model", str(tmp_path / "no-model"), "--store", str(store)]
    res = runner.invoke(app, [*base, *(args if "-p" in args else [*args, "-p", "SELECT"])])
    _one_line(res, needle, code=2)
    assert _digest(store) == before


def test_generate_on_cpu_only_torch_refuses_cuda(store: Path, tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    res = runner.invoke(
        app,
        ["generate", "--model", str(tmp_path / "no-model"), "--store", str(store), "-p", "SELECT", "--device", "cuda"],
    )
    _one_line(res, "no CUDA device is available", code=2)


def test_a_prompt_of_no_tokens_is_one_line(tmp_path: Path, tiny_model_dir: Path) -> None:
    """The tiny model has no chat template, so `-p ""` reaches the model as no tokens at all."""
    res = runner.invoke(app, ["generate", "--model", str(tiny_model_dir), "--store", str(tmp_path / "s"), "-p", ""])
    _one_line(res, "the prompt encodes to no tokens", code=2)


def test_non_utf8_bytes_in_argv(tmp_path: Path, store: Path) -> None:
    """The real thing: a byte that is not UTF-8 on the command line (Python keeps it as \\udcff)."""
    proc = subprocess.run(
        [sys.executable, "-m", "sufdec", "generate", "--store", str(store), "-p", b"SEL\xffECT"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    errors = [x for x in proc.stderr.splitlines() if x.startswith("error:")]
    assert proc.returncode == 2 and len(errors) == 1 and "not UTF-8" in errors[0], proc.stderr


def test_stats_prefix_that_is_not_utf8(store: Path, word_tokenizer_dir: Path) -> None:
    res = runner.invoke(
        app, ["stats", "--store", str(store), "--tokenizer", str(word_tokenizer_dir), "--prefix", "SELECT \udcff"]
    )
    _one_line(res, "--prefix holds byte 0xff", code=2)
    res = runner.invoke(
        app, ["stats", "--store", str(store), "--tokenizer", str(word_tokenizer_dir), "--top", str(10**20)]
    )
    _one_line(res, "--top must be a whole number", code=2)


def test_budgets_beyond_64_bits(store: Path, tmp_path: Path, word_tokenizer_dir: Path) -> None:
    """msgpack stores at most 64-bit integers: these were OverflowError tracebacks."""
    before = _digest(store)
    src = tmp_path / "x.jsonl"
    src.write_text(json.dumps({"text": "SELECT age FROM singer"}) + "\n")
    index = ["index", str(src), "--store", str(store), "--tokenizer", str(word_tokenizer_dir)]
    _one_line(runner.invoke(app, [*index, "--max-tokens", "99999999999999999999999"]), "--max-tokens", code=2)
    _one_line(runner.invoke(app, [*index, "--max-bytes", "99999999999999999999999"]), "largest budget", code=2)
    _one_line(runner.invoke(app, [*index, "--max-bytes", "9" * 5000]), "largest budget", code=2)
    _one_line(runner.invoke(app, ["evict", "--store", str(store), "--max-tokens", str(2**64)]), "--max-tokens", code=2)
    assert _digest(store) == before


# ---------------------------------------------------------------- file names, tokenizers, model files
def test_input_file_names_that_are_not_utf8(store: Path, tmp_path: Path, word_tokenizer_dir: Path) -> None:
    name = tmp_path / "bad\udcff.jsonl"  # the file system name holds the byte 0xff
    res = runner.invoke(app, ["index", str(name), "--store", str(store), "--tokenizer", str(word_tokenizer_dir)])
    _one_line(res, "bad\\xff.jsonl: no such file", code=2)
    res = runner.invoke(app, ["generate", "--store", str(store), "--prompts", str(name)])
    _one_line(res, "bad\\xff.jsonl: no such file", code=2)
    name.write_text(json.dumps({"text": "SELECT age FROM singer"}) + "\n")
    res = runner.invoke(app, ["index", str(name), "--store", str(store), "--tokenizer", str(word_tokenizer_dir)])
    assert res.exit_code == 0 and "added 1 records" in res.output, res.output


def test_store_path_that_is_not_utf8(tmp_path: Path, word_tokenizer_dir: Path) -> None:
    """LMDB opens UTF-8 paths only: refused before anything is made (was a UnicodeEncodeError)."""
    src = tmp_path / "good.jsonl"
    src.write_text(json.dumps(GOOD) + "\n")
    where = tmp_path / "st\udcff"
    for args in (["index", str(src), "--tokenizer", str(word_tokenizer_dir)], ["stats"], ["compact"]):
        _one_line(runner.invoke(app, [*args, "--store", str(where)]), "st\\xff is not UTF-8")
    assert not os.path.lexists(where)


def test_damaged_tokenizer_json(store: Path, tmp_path: Path) -> None:
    bad = tmp_path / "badtok"
    bad.mkdir()
    (bad / "tokenizer.json").write_text("garbage{{{")
    src = tmp_path / "x.jsonl"
    src.write_text(json.dumps(GOOD) + "\n")
    before = _digest(store)
    _one_line(
        runner.invoke(app, ["index", str(src), "--store", str(store), "--model", str(bad)]),
        "could not read the tokenizer of",
        "damaged",
    )
    _one_line(
        runner.invoke(app, ["stats", "--store", str(store), "--tokenizer", str(bad), "--prefix", "x"]),
        "could not read the tokenizer of",
    )
    assert _digest(store) == before


def _tiny_gguf(path: Path) -> Path:
    import numpy as np
    from gguf import GGUFWriter

    w = GGUFWriter(str(path), "llama")
    w.add_uint32("llama.context_length", 16)
    w.add_array("tokenizer.ggml.tokens", ["a", "bb", "ccc"])
    w.add_tensor("token_embd.weight", np.arange(64, dtype=np.float32).reshape(8, 8))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_check_gguf_finds_every_truncation(tmp_path: Path) -> None:
    from sufdec.models import ModelFileError, check_gguf

    whole = _tiny_gguf(tmp_path / "m.gguf")
    check_gguf(whole)
    data = whole.read_bytes()
    for cut in (0, 10, 30, 100, len(data) // 2, len(data) - 1):
        part = tmp_path / f"cut{cut}.gguf"
        part.write_bytes(data[:cut])
        with pytest.raises(ModelFileError, match="truncated|not a GGUF"):
            check_gguf(part)
    (tmp_path / "junk.gguf").write_bytes(b"\x00" * 200)
    with pytest.raises(ModelFileError, match="does not start with 'GGUF'"):
        check_gguf(tmp_path / "junk.gguf")


def test_a_gguf_file_truncated_to_100_bytes(store: Path, tmp_path: Path) -> None:
    """Was a struct.error traceback from inside transformers (generate), after importing it."""
    trunc = tmp_path / "model.gguf"
    trunc.write_bytes(_tiny_gguf(tmp_path / "m.gguf").read_bytes()[:100])
    before = _digest(store)
    _one_line(
        runner.invoke(app, ["generate", "--model", str(trunc), "--store", str(store), "-p", "SELECT"]),
        "model.gguf is truncated",
    )
    src = tmp_path / "x.jsonl"
    src.write_text(json.dumps(GOOD) + "\n")
    _one_line(runner.invoke(app, ["index", str(src), "--store", str(store), "--model", str(trunc)]), "is truncated")
    assert _digest(store) == before
    from sufdec.cli import common
    from sufdec.models import ModelFileError

    with pytest.raises(ModelFileError):  # `model pull --gguf` converts through this
        common.convert_gguf(trunc, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- store locations and damaged meta
def test_store_under_a_file(tmp_path: Path, word_tokenizer_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SUFDEC_STORE=/etc/passwd/x: one line naming the file in the way, also before generate loads a model."""
    afile = tmp_path / "afile"
    afile.write_text("x")
    monkeypatch.setenv("SUFDEC_STORE", str(afile / "x"))
    src = tmp_path / "x.jsonl"
    src.write_text(json.dumps(GOOD) + "\n")
    for args in (
        ["stats"],
        ["verify"],
        ["compact"],
        ["evict", "--max-tokens", "1"],
        ["index", str(src), "--tokenizer", str(word_tokenizer_dir)],
        ["generate", "--model", str(tmp_path / "no-model"), "-p", "SELECT"],
    ):
        _one_line(runner.invoke(app, args), "afile is a file, not a directory")
    assert afile.read_text() == "x"


def test_store_in_a_directory_without_permissions(store: Path, tmp_path: Path, word_tokenizer_dir: Path) -> None:
    """$SUFDEC_STORE inside a directory this user may not enter (root: CAP_DAC_OVERRIDE dropped)."""
    prefix = _without_root_override()
    src = tmp_path / "x.jsonl"
    src.write_text(json.dumps(GOOD) + "\n")
    before = _digest(store)
    os.chmod(store, 0o000)
    try:
        for args in (["stats"], ["compact"], ["index", str(src), "--tokenizer", str(word_tokenizer_dir)]):
            proc = subprocess.run(
                [*prefix, sys.executable, "-m", "sufdec", *args],
                capture_output=True,
                text=True,
                timeout=60,
                cwd=REPO,
                env={**os.environ, "SUFDEC_STORE": str(store)},
            )
            errors = [x for x in proc.stderr.splitlines() if x.startswith("error:")]
            assert proc.returncode == 1 and len(errors) == 1 and "permission denied" in errors[0], proc.stderr
    finally:
        os.chmod(store, 0o755)
    assert _digest(store) == before


def test_compact_that_cannot_write_its_copy(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A read-only store directory: compact used to checkpoint (rewriting data.mdb) and then
    raise PermissionError from mkdtemp. Now it tries the directory first and changes nothing."""
    from sufdec.store import compact as compact_mod

    def read_only(*a, **k):
        raise PermissionError(13, "Permission denied", str(store / ".compact-x"))

    monkeypatch.setattr(compact_mod.tempfile, "mkdtemp", read_only)
    before = _digest(store)
    _one_line(runner.invoke(app, ["compact", "--store", str(store)]), "permission denied", "the store is unchanged")
    assert _digest(store) == before


def _set_meta(store: Path, **values) -> None:
    env = lmdb.open(str(store), max_dbs=8)
    db = env.open_db(b"meta")
    with env.begin(write=True) as txn:
        for k, v in values.items():
            txn.put(k.encode(), codec.pack(v), db=db)
    env.close()


@pytest.mark.parametrize(
    "values, needle",
    [
        ({"eviction": "random"}, "'eviction' is 'random', not one of fifo, lru"),
        ({"max_tokens": -3}, "'max_tokens' is -3"),
        ({"max_depth": 0}, "'max_depth' is 0, not a tree depth"),
        ({"snapshot_log_pos": 10**9}, "beyond the log's end"),
    ],
)
def test_hand_edited_meta_value_out_of_range(
    store: Path, tmp_path: Path, word_tokenizer_dir: Path, values, needle
) -> None:
    """Values of the right type but impossible (were ValueError tracebacks in every command)."""
    _set_meta(store, **values)
    before = _digest(store)
    src = tmp_path / "x.jsonl"
    src.write_text(json.dumps({"text": "SELECT age FROM singer"}) + "\n")
    for args in (
        ["stats"],
        ["verify"],
        ["compact"],
        ["evict", "--max-tokens", "1"],
        ["index", str(src), "--tokenizer", str(word_tokenizer_dir)],
    ):
        _one_line(runner.invoke(app, [*args, "--store", str(store)]), "metadata is damaged", needle)
    assert _digest(store) == before


# ---------------------------------------------------------------- a closed standard output
def _into_closed_pipe(*args: str) -> subprocess.CompletedProcess:
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [sys.executable, "-m", "sufdec", *args],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            cwd=REPO,
        )
    finally:
        os.close(write_end)


def test_every_printing_command_exits_quietly_into_a_closed_pipe(
    store: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    """`sufdec stats | head -1`, `sufdec generate ... | true`: exit 0, nothing on stderr but chatter
    (they used to exit 1; generate's text streams from inside the decode loop)."""
    on_store = ["--store", str(store)]
    for args in (["stats", *on_store], ["stats", "--json", *on_store], ["verify", *on_store]):
        proc = _into_closed_pipe(*args)
        assert proc.returncode == 0 and proc.stderr == "", (args, proc.returncode, proc.stderr)
    proc = _into_closed_pipe(
        "generate",
        "--model",
        str(tiny_model_dir),
        "--store",
        str(tmp_path / "s"),
        "-p",
        "SELECT name FROM singer",
        "--raw",
        "-n",
        "8",
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr and "error:" not in proc.stderr


# ---------------------------------------------------------------- another process's swap, seen by refresh
def test_data_file_replaced_between_requests_is_one_line(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Store.refresh (once per request) raises StoreLockedError when data.mdb was replaced:
    the outputs so far are printed, then one line, exit 1 (no retry: the old file is gone)."""
    from sufdec.store.store import Store

    real, calls = Store.refresh, []

    def refresh(self):
        calls.append(1)
        if len(calls) == 2:  # someone restores a copy over the store between the two requests
            shutil.copy(self.path / "data.mdb", self.path / "copy.mdb")
            os.replace(self.path / "copy.mdb", self.path / "data.mdb")
        return real(self)

    monkeypatch.setattr(Store, "refresh", refresh)
    prompts = tmp_path / "two.jsonl"
    prompts.write_text('{"prompt": "SELECT name"}\n{"prompt": "SELECT age"}\n')
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
            "--raw",
            "-n",
            "3",
            "--json",
        ],
    )
    _one_line(res, "data.mdb of the store", "was replaced", "Run the command again")
    assert sum(line.startswith("{") for line in res.stdout.splitlines()) == 1
