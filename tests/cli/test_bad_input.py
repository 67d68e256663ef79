"""Bad input through the CLI: one clear error line, a non-zero exit where the command
failed, and the store left exactly as it was (its data file byte for byte)."""

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
from sufdec.store import env as env_mod

from ..conftest import SQL_WORDS, build_tiny_model, build_word_tokenizer

runner = CliRunner()
GOOD = {"text": "SELECT name FROM singer WHERE age > 30"}
REPO = Path(__file__).resolve().parents[2]


def _index(store: Path, src: Path, tok: Path, *extra: str):
    return runner.invoke(app, ["index", str(src), "--store", str(store), "--tokenizer", str(tok), *extra])


def _errors(res) -> list[str]:
    return [line for line in res.output.splitlines() if line.startswith("error:")]


def _digest(store: Path) -> str:
    return hashlib.sha256((store / "data.mdb").read_bytes()).hexdigest()


@pytest.fixture
def store(tmp_path: Path, word_tokenizer_dir: Path) -> Path:
    """A store holding one record."""
    src = tmp_path / "good.jsonl"
    src.write_text(json.dumps(GOOD) + "\n")
    assert _index(tmp_path / "store", src, word_tokenizer_dir).exit_code == 0
    return tmp_path / "store"


def _refused(store: Path, res, *needles: str, code: int = 1) -> None:
    before = _digest(store) if (store / "data.mdb").exists() else None
    assert res.exit_code == code, res.output
    errors = _errors(res)
    assert len(errors) == 1, res.output
    for needle in needles:
        assert needle in errors[0] or needle in res.output, res.output
    if before is not None:
        assert _digest(store) == before


def test_empty_file(tmp_path: Path, word_tokenizer_dir: Path) -> None:
    src = tmp_path / "empty.jsonl"
    src.write_bytes(b"")
    res = _index(tmp_path / "new-store", src, word_tokenizer_dir)
    _refused(tmp_path / "new-store", res, "is empty")
    assert not (tmp_path / "new-store").exists()  # not even created


@pytest.mark.parametrize(
    "line, reason",
    [
        (b"\xff\xfe not utf-8 \xc3\x28", "invalid UTF-8"),
        (b"[1, 2, 3]", "expected a JSON object, got an array"),
        (b'"just a string"', "expected a JSON object, got a string"),
        (b'{"title": "no output here"}', "no output field"),
        (b'{"token_ids": [3, -2, 4]}', "token_ids[1] = -2 is outside the vocabulary"),
        (b'{"token_ids": [3, 99999]}', "outside the vocabulary"),
        (b'{"token_ids": []}', "empty output"),
        (b'{"text": 42}', "must be a string"),
        (b'{"text": "unterminated', "invalid JSON"),
        (b"   \n\n", "blank lines"),
    ],
)
def test_unusable_lines(store: Path, tmp_path: Path, word_tokenizer_dir: Path, line: bytes, reason: str) -> None:
    before = _digest(store)
    src = tmp_path / "bad.jsonl"
    src.write_bytes(line + b"\n")
    res = _index(store, src, word_tokenizer_dir)
    _refused(store, res, reason, "the store is unchanged")
    assert _digest(store) == before


def test_a_100mb_line_is_skipped_without_reading_it_whole(tmp_path: Path, word_tokenizer_dir: Path) -> None:
    """One 100 MB line between two good ones: reported and skipped, the good ones kept, and
    the indexing process's peak memory stays far below the line's size (read in 16 MiB pieces)."""
    src = tmp_path / "huge.jsonl"
    with open(src, "wb") as f:
        f.write(json.dumps(GOOD).encode() + b"\n" + b'{"text": "')
        block = b"name " * (1 << 18)  # 1.25 MiB
        for _ in range(80):
            f.write(block)
        f.write(b'"}\n' + json.dumps({"text": "SELECT count(*) FROM concert"}).encode() + b"\n")
    assert src.stat().st_size > 100 * 10**6
    code = (
        "import sys; from sufdec.cli.app import app\n"
        "try:\n    app(sys.argv[1:])\nexcept SystemExit as e:\n    code = e.code\n"
        "hwm = next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1]\n"
        "print('maxrss_kb', hwm, 'exit', code)\n"
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "index",
            str(src),
            "--store",
            str(tmp_path / "s"),
            "--tokenizer",
            str(word_tokenizer_dir),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    out = json.loads(next(x for x in proc.stdout.splitlines() if x.startswith("{")))
    assert out["records_added"] == 2 and out["skipped"] == 1
    assert "over the 16,777,216-byte limit" in out["problems"][0]["reason"] and out["problems"][0]["line"] == 2
    rss_kb = int(proc.stdout.split("maxrss_kb")[1].split()[0])
    print(f"\npeak RSS {rss_kb // 1024} MB")
    assert rss_kb < 200 * 1024, rss_kb  # peak RSS (VmHWM: ru_maxrss survives exec) well under the 100 MB line


def test_store_path_that_is_a_file(tmp_path: Path, word_tokenizer_dir: Path) -> None:
    src = tmp_path / "good.jsonl"
    src.write_text(json.dumps(GOOD) + "\n")
    afile = tmp_path / "not-a-dir"
    afile.write_text("hello")
    for res in (
        _index(afile, src, word_tokenizer_dir),
        runner.invoke(app, ["stats", "--store", str(afile)]),
        runner.invoke(app, ["verify", "--store", str(afile)]),
        runner.invoke(app, ["evict", "--store", str(afile), "--max-tokens", "1"]),
    ):
        assert res.exit_code == 1 and len(_errors(res)) == 1 and "is a file" in res.output, res.output
    assert afile.read_text() == "hello"


def _without_root_override() -> list[str]:
    """A command prefix that makes permissions bind (root ignores them otherwise)."""
    if os.geteuid() != 0:
        return []
    if not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv: file permissions cannot be enforced")
    caps = "-dac_override,-dac_read_search"
    return ["setpriv", f"--bounding-set={caps}", f"--inh-caps={caps}"]


def test_read_only_store(store: Path, tmp_path: Path, word_tokenizer_dir: Path) -> None:
    """Store files and directory without write permission: `index` fails with one line,
    nothing changes; `stats` still reads it only if LMDB can use its lock file, else one line too."""
    src = tmp_path / "more.jsonl"
    src.write_text(json.dumps({"text": "SELECT age FROM singer"}) + "\n")
    before = _digest(store)
    paths = [store, *store.iterdir()]
    try:
        for p in paths:
            os.chmod(p, 0o555 if p.is_dir() else 0o444)
        code = "import sys; from sufdec.cli.app import app; app(sys.argv[1:])"
        for args in (["index", str(src), "--tokenizer", str(word_tokenizer_dir)], ["stats"]):
            proc = subprocess.run(
                [*_without_root_override(), sys.executable, "-c", code, *args, "--store", str(store)],
                capture_output=True,
                text=True,
                timeout=60,
                cwd=REPO,
            )
            errors = [x for x in proc.stderr.splitlines() if x.startswith("error:")]
            if args[0] == "stats" and proc.returncode == 0:
                continue
            assert proc.returncode == 1 and len(errors) == 1 and "permission denied" in errors[0], proc.stderr
        assert _digest(store) == before
    finally:
        for p in paths:
            os.chmod(p, 0o755 if p.is_dir() else 0o644)


def test_store_made_with_another_tokenizer(store: Path, tmp_path: Path) -> None:
    other = build_word_tokenizer(tmp_path / "other-tok", ["completely", "different", "words"])
    src = tmp_path / "x.jsonl"
    src.write_text(json.dumps({"text": "different words"}) + "\n")
    _refused(store, _index(store, src, other), "was built with tokenizer")


def _set_meta(store: Path, **values) -> None:
    env = lmdb.open(str(store), max_dbs=8)
    db = env.open_db(b"meta")
    with env.begin(write=True) as txn:
        for k, v in values.items():
            txn.put(k.encode(), codec.pack(v), db=db)
    env.close()


def test_store_of_a_newer_format(store: Path, tmp_path: Path, word_tokenizer_dir: Path) -> None:
    _set_meta(store, format_version=99)
    src = tmp_path / "x.jsonl"
    src.write_text(json.dumps(GOOD) + "\n")
    _refused(store, _index(store, src, word_tokenizer_dir), "format version 99", "upgrade sufdec")
    for cmd in (["stats"], ["verify"], ["compact"]):
        res = runner.invoke(app, [*cmd, "--store", str(store)])
        assert res.exit_code == 1 and "format version 99" in res.output, (cmd, res.output)


def test_full_disk(store: Path, tmp_path: Path, word_tokenizer_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The map is full and cannot grow (what a full disk looks like to LMDB): one line, nothing written."""
    real_open = env_mod._open_lmdb

    def small_map(path, limits, readonly):
        return real_open(path, env_mod.MapLimits(initial=256 << 10, maximum=1 << 30), readonly)

    def refuse(env, size):
        if size:
            raise lmdb.Error("mdb_env_set_mapsize: No space left on device")

    monkeypatch.setattr(env_mod, "_open_lmdb", small_map)
    monkeypatch.setattr(env_mod, "_set_map_size", refuse)
    src = tmp_path / "big.jsonl"
    src.write_text(
        "".join(json.dumps({"token_ids": [2 + (i + j) % 40 for j in range(2000)]}) + "\n" for i in range(60))
    )
    _refused(store, _index(store, src, word_tokenizer_dir), "could not grow", "nothing was written")
    monkeypatch.undo()
    res = runner.invoke(app, ["verify", "--store", str(store), "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["sequences"] == 1


def test_interrupted_model_pull(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C during `sufdec model pull`: exit 130, one line, no model folder or temp files left."""
    from sufdec import models
    from sufdec.cli import common

    monkeypatch.setenv("SUFDEC_CACHE_DIR", str(tmp_path / "cache"))
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"right")
    fake = models.PackagedModel("Fake", "fake", "0.1", "fake/model.gguf", hashlib.sha256(b"right").hexdigest())
    monkeypatch.setattr(models, "DEFAULT_MODEL", fake)

    def interrupted(src, out):
        Path(out).mkdir(parents=True)
        (Path(out) / "model.safetensors").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(common, "convert_gguf", interrupted)
    res = runner.invoke(app, ["model", "pull", "--gguf", str(gguf)])
    assert res.exit_code == 130 and "interrupted" in res.output
    assert list((tmp_path / "cache" / "models").iterdir()) == []
    assert not models.is_ready(models.model_dir(tmp_path / "cache", fake))


def test_prompt_longer_than_the_context(tmp_path: Path) -> None:
    """A 16-position model, a 40-word prompt: one line naming both sizes, the store untouched."""
    model = build_tiny_model(tmp_path / "model16", SQL_WORDS, max_positions=16)
    src = tmp_path / "good.jsonl"
    src.write_text(json.dumps(GOOD) + "\n")
    store = tmp_path / "store"
    assert runner.invoke(app, ["index", str(src), "--store", str(store), "--model", str(model)]).exit_code == 0
    prompt = " ".join(["SELECT name FROM singer"] * 10)
    res = runner.invoke(
        app,
        [
            "generate",
            "--model",
            str(model),
            "--store",
            str(store),
            "--prompt",
            prompt,
            "--raw",
            "--max-new-tokens",
            "4",
        ],
    )
    _refused(store, res, "the prompt has 40 tokens", "context holds 16")


def test_every_line_level_failure_is_a_skipped_line(tmp_path: Path, word_tokenizer_dir: Path) -> None:
    """Issue 12, item 2: a lone surrogate (the tokenizer raised TypeError), an integer of more
    than 4,300 digits (Python's int-conversion limit) and JSON errors are skipped lines with
    their numbers; the run goes on and keeps the good lines."""
    src = tmp_path / "mixed.jsonl"
    src.write_bytes(
        b"\n".join(
            [
                json.dumps(GOOD).encode(),
                b'{"text": "SELECT \\ud800 name"}',
                b'{"token_ids": [' + b"7" * 4400 + b"]}",
                b'{"messages": [{"role": "assistant", "content": "\\udfff"}]}',
                json.dumps({"text": "SELECT age FROM singer"}).encode(),
                b'{"text": "unterminated',
            ]
        )
        + b"\n"
    )
    res = _index(tmp_path / "s", src, word_tokenizer_dir, "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["records_added"] == 2 and out["skipped"] == 4
    reasons = {p["line"]: p["reason"] for p in out["problems"]}
    assert sorted(reasons) == [2, 3, 4, 6]
    assert "surrogate" in reasons[2] and "surrogate" in reasons[4] and "digits" in reasons[3]
    # counted from 1, as `generate --prompt` counts (issue 20 item 11: index said "character 0")
    assert "at character 8)" in reasons[2] and "at character 1)" in reasons[4]
    assert "column" in reasons[6] and "at at" not in reasons[6]


def test_strict_abort_says_how_many_records_were_committed(tmp_path: Path, word_tokenizer_dir: Path) -> None:
    src = tmp_path / "in.jsonl"
    rows = [{"text": t} for t in ("SELECT name", "SELECT age", "SELECT name FROM singer")]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"text": "\\ud800"}\n')
    res = _index(tmp_path / "s", src, word_tokenizer_dir, "--strict", "--txn-records", "1")
    assert res.exit_code == 1 and len(_errors(res)) == 1, res.output
    assert "line 4" in _errors(res)[0] and "3 records" in _errors(res)[0], res.output


def test_all_bad_lines_on_a_new_path_create_no_store(tmp_path: Path, word_tokenizer_dir: Path) -> None:
    """Issue 12, item 12: the message says the store is unchanged, so it must not exist afterwards."""
    src = tmp_path / "bad.jsonl"
    src.write_text("not json\n[1, 2]\n")
    res = _index(tmp_path / "new" / "store", src, word_tokenizer_dir)
    assert res.exit_code == 1 and "no usable record" in res.output, res.output
    assert not (tmp_path / "new").exists()


def test_max_bytes_below_one_byte_is_refused(store: Path, tmp_path: Path, word_tokenizer_dir: Path) -> None:
    """`--max-bytes 0.1` silently meant unlimited (0); a size must be a whole number of bytes."""
    src = tmp_path / "x.jsonl"
    src.write_text(json.dumps(GOOD) + "\n")
    for value in ("0.1", "0.9", "1.0000001K"):
        _refused(store, _index(store, src, word_tokenizer_dir, "--max-bytes", value), "--max-bytes", code=2)
    res = runner.invoke(app, ["evict", "--store", str(store), "--max-bytes", "0.1"])
    assert res.exit_code == 2 and "--max-bytes" in res.output
    res = runner.invoke(app, ["evict", "--store", str(store), "--max-bytes", "0.5K", "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["max_bytes"] == 512, res.output


def test_hand_edited_meta_value_of_the_wrong_type(store: Path, tmp_path: Path, word_tokenizer_dir: Path) -> None:
    """A meta value of the wrong type is refused at open with one line, not a TypeError mid-write."""
    _set_meta(store, next_seq_id="abc")
    src = tmp_path / "x.jsonl"
    src.write_text(json.dumps({"text": "SELECT age FROM singer"}) + "\n")
    _refused(store, _index(store, src, word_tokenizer_dir), "'next_seq_id'", "not an integer")
    for cmd in (["stats"], ["verify"], ["compact"]):
        res = runner.invoke(app, [*cmd, "--store", str(store)])
        assert res.exit_code == 1 and len(_errors(res)) == 1 and "next_seq_id" in res.output, (cmd, res.output)


def test_where_the_store_goes_is_never_a_guess(tmp_path: Path, monkeypatch) -> None:
    """Issue 20 item 10: an empty --store or $SUFDEC_STORE is an error (it used to mean the
    default store, or the current directory), and SUFDEC_STORE='~' does not write a store's
    files among the home directory's."""
    res = runner.invoke(app, ["stats", "--store", ""])
    assert res.exit_code == 2 and "is empty" in res.output
    monkeypatch.setenv("SUFDEC_STORE", "")
    res = runner.invoke(app, ["stats"])
    assert res.exit_code == 1 and _errors(res) == [
        "error: SUFDEC_STORE is set but empty: unset it for the default store, or give a directory"
    ]
    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.tex").write_text("mine")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("SUFDEC_STORE", "~")
    src = tmp_path / "a.jsonl"
    src.write_text(json.dumps(GOOD) + "\n")
    res = runner.invoke(app, ["index", str(src), "--tokenizer", str(build_word_tokenizer(tmp_path / "tok", SQL_WORDS))])
    assert res.exit_code == 1 and len(_errors(res)) == 1 and "holds other files (thesis.tex)" in res.output
    assert [p.name for p in home.iterdir()] == ["thesis.tex"]


def test_messages_say_what_is_really_wrong(tmp_path: Path) -> None:
    """Issue 20 item 11: a store on /proc was "full (0 bytes free)"; a GGUF file of a newer
    version was "truncated or damaged"."""
    import struct

    from sufdec import models
    from sufdec.store import NotEmptyDirectoryError, Store, failures

    if Path("/proc/self").is_dir():
        with pytest.raises(NotEmptyDirectoryError, match="holds other files"):
            Store.open("/proc/self")
        err = failures.full_disk(Path("/proc/self/sufdec"), "x")
        assert "stores no files (like /proc or /sys)" in str(err) and "full" not in str(err)
    newer = tmp_path / "newer.gguf"
    newer.write_bytes(b"GGUF" + struct.pack("<I", 4) + struct.pack("<QQ", 0, 0) + b"\0" * 64)
    with pytest.raises(models.ModelFileError, match="version 4, newer than the readers support"):
        models.check_gguf(newer)
