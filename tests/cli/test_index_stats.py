"""index and stats through typer's CliRunner on a temporary store."""

import json

from typer.testing import CliRunner

from sufdec.cli.app import app

runner = CliRunner()

LINES = [
    {"text": "SELECT name FROM singer WHERE age > 30"},
    {"prompt": "how many?", "completion": "SELECT count(*) FROM singer"},
    {"prompt": "p", "response": "SELECT name FROM singer ORDER BY age DESC"},
    {"prompt": "p", "output": "SELECT avg(age) FROM singer"},
    {
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "SELECT name FROM concert"},
            {"role": "user", "content": "more"},
            {"role": "assistant", "content": "SELECT name FROM stadium"},
        ]
    },
    {"token_ids": [2, 3, 4, 5]},
]


def _write(path, lines, extra=""):
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n" + extra)
    return path


def _index(store, src, tok_dir, *extra):
    return runner.invoke(app, ["index", str(src), "--store", str(store), "--tokenizer", str(tok_dir), "--json", *extra])


def test_index_all_shapes_then_rerun_adds_nothing(tmp_path, word_tokenizer_dir):
    src = _write(tmp_path / "out.jsonl", LINES)
    res = _index(tmp_path / "store", src, word_tokenizer_dir)
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout.strip().splitlines()[-1])
    assert report["records_added"] == 7  # the chat line holds two assistant turns
    assert report["skipped"] == 0
    again = json.loads(_index(tmp_path / "store", src, word_tokenizer_dir).stdout.strip().splitlines()[-1])
    assert again["records_added"] == 0 and again["duplicates"] == 7
    assert again["store_sequences"] == 7


def test_malformed_lines_are_reported_and_skipped(tmp_path, word_tokenizer_dir):
    src = _write(tmp_path / "out.jsonl", LINES[:2], extra='not json\n[1, 2]\n{"prompt": "no output"}\n')
    res = _index(tmp_path / "store", src, word_tokenizer_dir)
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout.strip().splitlines()[-1])
    assert report["records_added"] == 2
    assert report["skipped"] == 3
    assert [p["line"] for p in report["problems"]] == [3, 4, 5]


def test_strict_aborts_with_the_line_number(tmp_path, word_tokenizer_dir):
    src = _write(tmp_path / "out.jsonl", LINES[:2], extra="not json\n")
    res = runner.invoke(
        app, ["index", str(src), "--store", str(tmp_path / "s"), "--tokenizer", str(word_tokenizer_dir), "--strict"]
    )
    assert res.exit_code != 0
    assert "line 3" in res.output


def test_index_reads_stdin(tmp_path, word_tokenizer_dir):
    data = "\n".join(json.dumps(x) for x in LINES[:3]) + "\n"
    res = runner.invoke(
        app,
        ["index", "-", "--store", str(tmp_path / "s"), "--tokenizer", str(word_tokenizer_dir), "--json"],
        input=data,
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout.strip().splitlines()[-1])["records_added"] == 3


def test_missing_file_is_one_clear_error(tmp_path, word_tokenizer_dir):
    res = runner.invoke(
        app,
        ["index", str(tmp_path / "nope.jsonl"), "--store", str(tmp_path / "s"), "--tokenizer", str(word_tokenizer_dir)],
    )
    assert res.exit_code == 2
    assert "no such file" in res.output


def test_stats_json_keys_and_prefix_tree(tmp_path, word_tokenizer_dir):
    src = _write(tmp_path / "out.jsonl", LINES)
    assert _index(tmp_path / "store", src, word_tokenizer_dir).exit_code == 0
    res = runner.invoke(
        app,
        [
            "stats",
            "--store",
            str(tmp_path / "store"),
            "--json",
            "--tokenizer",
            str(word_tokenizer_dir),
            "--prefix",
            "SELECT name",
            "--top",
            "3",
        ],
    )
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    for key in ("sequences", "tokens", "nodes", "memory_bytes", "disk_bytes", "tokenizer", "format_version"):
        assert key in info
    assert info["sequences"] == 7
    assert (
        info["tokens"]
        == sum(
            len(s.split())
            for s in [
                "SELECT name FROM singer WHERE age > 30",
                "SELECT count(*) FROM singer",
                "SELECT name FROM singer ORDER BY age DESC",
                "SELECT avg(age) FROM singer",
                "SELECT name FROM concert",
                "SELECT name FROM stadium",
            ]
        )
        + 4
    )
    # after "SELECT name" comes " FROM" in all 4 records that have it
    assert info["top"][0]["text"] == "FROM" and info["top"][0]["count"] == 4
    pretty = runner.invoke(
        app,
        [
            "stats",
            "--store",
            str(tmp_path / "store"),
            "--tokenizer",
            str(word_tokenizer_dir),
            "--prefix",
            "SELECT name",
        ],
    )
    assert pretty.exit_code == 0
    assert "occurs 4 times" in pretty.output and "p=0.50" in pretty.output  # singer 2 of 4


def test_stats_without_a_store_fails_clearly(tmp_path):
    res = runner.invoke(app, ["stats", "--store", str(tmp_path / "none")])
    assert res.exit_code == 1
    assert "no store" in res.output


def test_model_list_and_help():
    res = runner.invoke(app, ["model", "list", "--json"])
    assert res.exit_code == 0
    assert isinstance(json.loads(res.stdout), list)
    for cmd in (
        ["--help"],
        ["index", "--help"],
        ["stats", "--help"],
        ["generate", "--help"],
        ["bench", "tree", "--help"],
    ):
        out = runner.invoke(app, cmd)
        assert out.exit_code == 0, cmd


# ---------------------------------------------------------------- issue 12, item 12: misleading output
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def test_stats_prefix_longer_than_the_tree_depth_says_so(tmp_path, word_tokenizer_dir):
    src = _write(tmp_path / "out.jsonl", [{"text": " ".join(["SELECT name FROM singer"] * 30)}])
    assert _index(tmp_path / "store", src, word_tokenizer_dir).exit_code == 0
    prefix = " ".join(["SELECT name FROM singer"] * 20)  # 80 tokens, the depth is 64
    for extra in ([], ["--top", "3"], ["--json", "--top", "3"]):
        res = runner.invoke(
            app,
            [
                "stats",
                "--store",
                str(tmp_path / "store"),
                "--tokenizer",
                str(word_tokenizer_dir),
                "--prefix",
                prefix,
                *extra,
            ],
        )
        assert "occurs 0 times" not in res.output and "depth" in res.output and "80 tokens" in res.output, res.output


def test_index_reads_a_fifo_and_process_substitution(tmp_path, word_tokenizer_dir):
    data = "".join(json.dumps(x) + "\n" for x in LINES[:3])
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)

    def feed():  # waits for the reader without ever blocking the test run for good
        import time

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # ENXIO: no reader yet
                time.sleep(0.05)
                continue
            os.set_blocking(fd, True)
            with os.fdopen(fd, "w") as f:
                f.write(data)
            return

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    res = _index(tmp_path / "s", fifo, word_tokenizer_dir)
    writer.join(timeout=30)
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout.strip().splitlines()[-1])["records_added"] == 3
    src = _write(tmp_path / "more.jsonl", LINES[3:])
    cmd = (
        f"{sys.executable} -m sufdec index <(cat {src}) --store {tmp_path / 's'} "
        f"--tokenizer {word_tokenizer_dir} --json"
    )
    proc = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["records_added"] == 4


def test_index_summary_mentions_evictions(tmp_path, word_tokenizer_dir):
    src = _write(tmp_path / "out.jsonl", LINES)
    assert _index(tmp_path / "store", src, word_tokenizer_dir).exit_code == 0
    more = _write(tmp_path / "more.jsonl", [{"text": "SELECT name FROM singer WHERE age > 40"}])
    res = runner.invoke(
        app,
        [
            "index",
            str(more),
            "--store",
            str(tmp_path / "store"),
            "--tokenizer",
            str(word_tokenizer_dir),
            "--max-tokens",
            "12",
        ],
    )
    assert res.exit_code == 0 and "evicted" in res.output, res.output
    res = _index(tmp_path / "store", more, word_tokenizer_dir, "--max-bytes", "1")
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["evicted"] >= 1 and out["store_sequences"] == 0, out


def test_index_into_a_closed_pipe_exits_quietly(tmp_path, word_tokenizer_dir):
    """`sufdec index ... | true`: the reader is gone before the summary is printed."""
    src = _write(tmp_path / "out.jsonl", LINES)
    cmd = [
        sys.executable,
        "-m",
        "sufdec",
        "index",
        str(src),
        "--store",
        str(tmp_path / "s"),
        "--tokenizer",
        str(word_tokenizer_dir),
    ]
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run(cmd, stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120, cwd=REPO)
    finally:
        os.close(write_end)
    assert proc.returncode == 0 and proc.stderr == "", (proc.returncode, proc.stderr)
    check = runner.invoke(app, ["stats", "--store", str(tmp_path / "s"), "--json"])
    assert json.loads(check.stdout)["sequences"] == 7


def test_stats_sources_counts_records_by_writer(tmp_path, word_tokenizer_dir):
    from sufdec.store import Store, TokenizerInfo
    from sufdec.tokenization import load_tokenizer

    store = tmp_path / "store"
    assert _index(store, _write(tmp_path / "out.jsonl", LINES), word_tokenizer_dir).exit_code == 0
    tok = load_tokenizer(word_tokenizer_dir)
    with Store.open(store, TokenizerInfo(tok.name, tok.fingerprint)) as st:
        st.append([7, 8, 9], source={"from": "vllm", "model": "m"})
        st.append([7, 8, 10], source={"from": "vllm", "model": "m"})
        st.append([9, 9], source={"from": "generate"})
    res = runner.invoke(app, ["stats", "--store", str(store), "--sources", "--json"])
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)["sources"]
    assert got == {
        "index": {"sequences": 7, "tokens": got["index"]["tokens"]},
        "vllm": {"sequences": 2, "tokens": 6},
        "generate": {"sequences": 1, "tokens": 2},
    }
    assert list(got) == ["index", "vllm", "generate"]  # most records first
    shown = runner.invoke(app, ["stats", "--store", str(store), "--sources"]).output
    assert "vllm" in shown and "written by" in shown
