"""Sharing from the command line: ``index --share`` on one host, ``stats --share`` on a new
one shows what the first indexed; ``share status`` and ``share push``; PostgreSQL down is a
warning, and what was learned meanwhile goes out on a later run."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from sufdec.cli.app import app

runner = CliRunner()
LINES = [
    {"text": f"SELECT {col} FROM {table}"}
    for col in ("name", "age", "country")
    for table in ("singer", "concert", "stadium")
][:7]


def _jsonl(path, lines):
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def _run(*args, env=None):
    res = runner.invoke(app, [str(a) for a in args], env=env)
    res.said = " ".join(res.output.split())  # what it printed, as one line (rich wraps at 80 columns)
    return res


def _last_json(res):
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_a_second_host_sees_what_the_first_indexed(tmp_path, word_tokenizer_dir, share_url):
    src = _jsonl(tmp_path / "out.jsonl", LINES)
    res = _run("index", src, "--store", tmp_path / "a", "--tokenizer", word_tokenizer_dir, "--share", share_url)
    assert res.exit_code == 0, res.output
    assert "7 of this host's published" in res.said
    res = _run(
        "stats",
        "--store",
        tmp_path / "b",
        "--tokenizer",
        word_tokenizer_dir,
        "--json",
        "--sources",
        env={"SUFDEC_SHARE": share_url},
    )
    assert res.exit_code == 0, res.output
    info = _last_json(res)
    assert info["sequences"] == 7
    (shared,) = [k for k in info["sources"] if k.startswith("shared by ")]
    assert info["sources"][shared]["sequences"] == 7
    res = _run("share", "status", "--store", tmp_path / "b", "--share", share_url, "--json")
    assert res.exit_code == 0, res.output
    status = _last_json(res)
    assert (status["lag_records"], status["queued"], status["table_rows"]) == (0, 0, 7)
    assert list(status["hosts"].values()) == [7] and status["host"] not in status["hosts"]


def test_history_goes_out_with_share_push(tmp_path, word_tokenizer_dir, share_url):
    src = _jsonl(tmp_path / "out.jsonl", LINES[:3])
    assert _run("index", src, "--store", tmp_path / "a", "--tokenizer", word_tokenizer_dir).exit_code == 0
    res = _run("share", "push", "--store", tmp_path / "a", "--share", share_url)
    assert res.exit_code == 0 and "published 3 outputs" in res.said, res.output
    res = _run("share", "push", "--store", tmp_path / "a", "--share", share_url)
    assert "published 0 outputs" in res.said


def test_postgres_down_queues_and_a_later_run_publishes(tmp_path, word_tokenizer_dir, share_url, postgres):
    a = tmp_path / "a"
    first = _jsonl(tmp_path / "one.jsonl", LINES[:2])
    assert _run("index", first, "--store", a, "--tokenizer", word_tokenizer_dir, "--share", share_url).exit_code == 0
    postgres.stop("fast")
    try:
        more = _jsonl(tmp_path / "two.jsonl", LINES[2:5])
        res = _run("index", more, "--store", a, "--tokenizer", word_tokenizer_dir, "--share", share_url, "--json")
        assert res.exit_code == 0, res.output  # a warning, never an error: the outputs are in the store
        assert "outputs stay queued in the store" in res.said
        assert _last_json(res)["store_sequences"] == 5
    finally:
        postgres.start()
    status = _last_json(_run("share", "status", "--store", a, "--share", share_url, "--json"))
    assert status["queued"] == 3 and status["table_rows"] == 2
    res = _run("stats", "--store", a, "--share", share_url, "--json")
    assert res.exit_code == 0 and "3 of this host's published" in res.said, res.output
    status = _last_json(_run("share", "status", "--store", a, "--share", share_url, "--json"))
    assert status["queued"] == 0 and status["table_rows"] == 5


def test_a_url_that_is_no_postgres_url_is_refused(tmp_path):
    res = _run("stats", "--store", tmp_path / "s", "--share", "mysql://x")
    assert res.exit_code == 2 and "--share takes a PostgreSQL URL" in res.said


def test_trim_keeps_the_newer_outputs(tmp_path, word_tokenizer_dir, share_url):
    src = _jsonl(tmp_path / "out.jsonl", LINES[:4])
    assert (
        _run("index", src, "--store", tmp_path / "a", "--tokenizer", word_tokenizer_dir, "--share", share_url).exit_code
        == 0
    )
    res = _run("share", "trim", "--keep-days", "1", "--share", share_url)
    assert res.exit_code == 0 and "deleted 0 outputs" in res.said, res.output
    res = _run("share", "trim", "--keep-days", "0", "--share", share_url)
    assert "deleted 4 outputs" in res.said, res.output
    assert _run("share", "trim", "--keep-days", "-1", "--share", share_url).exit_code == 2


def test_train_exit_trains_on_what_every_host_learned(tmp_path, tiny_model_dir, share_url, monkeypatch):
    import random

    from tests.conftest import SQL_WORDS

    monkeypatch.setenv("SUFDEC_CACHE_DIR", str(tmp_path / "cache"))
    rng = random.Random(0)
    lines = [{"text": " ".join(rng.choice(SQL_WORDS) for _ in range(rng.randint(8, 20)))} for _ in range(40)]
    src = _jsonl(tmp_path / "out.jsonl", lines)
    res = _run("index", src, "--store", tmp_path / "a", "--tokenizer", tiny_model_dir, "--share", share_url)
    assert res.exit_code == 0, res.output
    common = ["train-exit", "--model", tiny_model_dir, "--store", tmp_path / "b", "--layer", "1", "--steps", "2"]
    common += ["--draft-vocab", "0", "--json"]
    res = _run(*common)  # host b alone has no store: nothing to train on
    assert res.exit_code == 1 and "no store at" in res.said, res.output
    res = _run(*common, "--share", share_url)
    assert res.exit_code == 0, res.output
    assert "40 outputs of other hosts added" in res.said
    assert _last_json(res)["data_sequences"] == 40


def test_generate_catches_up_first_and_publishes_what_it_learns(tmp_path, tiny_model_dir, share_url):
    src = _jsonl(tmp_path / "out.jsonl", LINES)
    res = _run("index", src, "--store", tmp_path / "a", "--tokenizer", tiny_model_dir, "--share", share_url)
    assert res.exit_code == 0, res.output
    gen = ["generate", "--model", tiny_model_dir, "--store", tmp_path / "b", "--max-new-tokens", "12", "--json"]
    res = _run(*gen, "--prompt", "SELECT name FROM", "--share", share_url)
    assert res.exit_code == 0, res.output
    assert "7 outputs of other hosts added" in res.said  # caught up before the first request
    res = _run("stats", "--store", tmp_path / "a", "--json", "--sources", "--share", share_url)
    assert res.exit_code == 0, res.output
    info = _last_json(res)
    assert info["sequences"] == 8  # its own seven, and what generate learned on host b
    (shared,) = [k for k in info["sources"] if k.startswith("shared by ")]
    assert info["sources"][shared]["sequences"] == 1
