"""`sufdec bench --workload FILE.jsonl` end to end on a tiny random model (typer's CliRunner)."""

from __future__ import annotations

import json
import random

import pytest
from typer.testing import CliRunner

from sufdec.cli.app import app
from tests.conftest import SQL_WORDS

runner = CliRunner()
ALL = "vanilla,pld,suffix-chain,suffix-tree,suffix-paper,sufdec-off"
METHOD_KEYS = (
    "prompts",
    "tokens",
    "time_s",
    "tokens_per_s",
    "ms_per_token",
    "steps",
    "tau",
    "acceptance_rate",
    "draft_ms_per_step",
    "bookkeeping_ms_per_step",
    "speedup_median",
    "speedup_total",
    "mismatches",
    "first_mismatch",
    "accepted_by_match_len",
    "speedup_decode",
    "prefill_share",
)
TOP_KEYS = (
    "version",
    "workload",
    "settings",
    "method_drafts",
    "model",
    "dtype",
    "protocol",
    "commit",
    "machine",
    "train",
    "eval",
    "corpus",
    "methods",
    "prompts",
    "load_avg_1m",
    "cost_model",
    "acceptance_calibration",
)


@pytest.fixture(scope="module")
def workload(tmp_path_factory):
    rnd = random.Random(0)
    path = tmp_path_factory.mktemp("wl") / "sql.jsonl"
    with open(path, "w") as f:
        for i in range(12):
            prompt = " ".join(rnd.choice(SQL_WORDS) for _ in range(6 + i % 4))
            f.write(json.dumps({"id": f"q{i}", "prompt": prompt, "reference": "SELECT name FROM singer"}) + "\n")
    return path


def _bench(model_dir, workload, tmp_path, *extra):
    res = runner.invoke(
        app,
        [
            "bench",
            "--workload",
            str(workload),
            "--model",
            str(model_dir),
            "--train",
            "9",
            "--eval",
            "3",
            "--max-new-tokens",
            "12",
            "--out",
            str(tmp_path / "out"),
            "--corpus-cache",
            str(tmp_path / "cache"),
            "--json",
            *extra,
        ],
    )
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_bench_runs_end_to_end_with_documented_keys(tiny_model_dir, workload, tmp_path):
    result = _bench(tiny_model_dir, workload, tmp_path, "--methods", ALL, "--sizing", "fixed")
    for key in TOP_KEYS:
        assert key in result, key
    assert result["train"] == 9 and result["eval"] == 3 and result["protocol"] == "frozen"
    assert result["corpus"]["records"] == 9 and result["corpus"]["source"] == "model"
    assert list(result["methods"]) == ALL.split(",")
    for name, summary in result["methods"].items():
        for key in METHOD_KEYS:
            assert key in summary, (name, key)
        assert summary["mismatches"] == 0, (name, summary["first_mismatch"])  # every method is lossless
        assert summary["prompts"] == 3 and summary["tokens"] > 0
    assert result["methods"]["vanilla"]["speedup_total"] == 1.0
    assert result["methods"]["sufdec-off"]["tau"] == 1.0
    on_disk = json.loads((tmp_path / "out" / "results.json").read_text())
    assert on_disk["methods"].keys() == result["methods"].keys()
    for png in on_disk["plots"]:
        assert (tmp_path / "out" / png).stat().st_size > 1000
    assert (tmp_path / "out" / "speedup.png").exists()
    cached = list((tmp_path / "cache").glob("*.jsonl"))
    assert len(cached) == 1 and len(cached[0].read_text().splitlines()) == 9


def test_corpus_is_cached_and_reused(tiny_model_dir, workload, tmp_path, monkeypatch):
    _bench(tiny_model_dir, workload, tmp_path, "--methods", "vanilla")
    import sufdec.engine.batch_generate as bg

    def boom(*_a, **_k):
        raise AssertionError("the cached corpus should have been reused")

    monkeypatch.setattr(bg, "generate_plain_batched", boom)
    again = _bench(tiny_model_dir, workload, tmp_path, "--methods", "vanilla,suffix-tree", "--sizing", "fixed")
    assert again["corpus"]["records"] == 9


def test_a_method_that_cheats_is_reported(tiny_model_dir, workload, tmp_path, monkeypatch):
    from sufdec.bench import runners

    real = runners.hf_generate

    def cheating(model, prompt_ids, max_new_tokens, pld_tokens, pad_id):
        toks, *rest = real(model, prompt_ids, max_new_tokens, pld_tokens, pad_id)
        if pld_tokens:  # prompt lookup "answers" with a wrong third token
            toks = toks[:2] + [(toks[2] + 1) % 10] + toks[3:]
        return (toks, *rest)

    monkeypatch.setattr(runners, "hf_generate", cheating)
    result = _bench(tiny_model_dir, workload, tmp_path, "--methods", "vanilla,pld", "--max-new-tokens", "6")
    pld = result["methods"]["pld"]
    assert pld["mismatches"] == 3
    assert pld["first_mismatch"] == {"prompt": 0, "position": 2}
    assert result["methods"]["vanilla"]["mismatches"] == 0


def test_online_protocol_adds_each_output_once(tiny_model_dir, workload, tmp_path):
    result = _bench(
        tiny_model_dir,
        workload,
        tmp_path,
        "--methods",
        "vanilla,suffix-tree",
        "--online",
        "--corpus",
        "reference",
        "--sizing",
        "fixed",
    )
    assert result["protocol"] == "online" and result["corpus"]["source"] == "reference"
    assert result["methods"]["suffix-tree"]["mismatches"] == 0
    from sufdec.store import Store

    with Store.open(tmp_path / "out" / "store", readonly=True) as store:
        assert len(store) >= 2  # the (deduplicated) reference + the held-out outputs


def test_scaling_reports_each_corpus_size(tiny_model_dir, workload, tmp_path):
    res = runner.invoke(
        app,
        [
            "bench",
            "scaling",
            "--workload",
            str(workload),
            "--model",
            str(tiny_model_dir),
            "--sizes",
            "0,4,100",
            "--eval",
            "2",
            "--max-new-tokens",
            "10",
            "--sizing",
            "fixed",
            "--out",
            str(tmp_path / "sc"),
            "--corpus-cache",
            str(tmp_path / "cache"),
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    result = json.loads(res.stdout)
    assert [r["corpus"] for r in result["scaling"]] == [0, 4, 9]  # capped by the train split
    for row in result["scaling"]:
        assert row["mismatches"] == 0 and row["tau"] >= 1.0 and row["draft_ms_per_step"] is not None
    assert (tmp_path / "sc" / "tau_vs_corpus.png").exists()


def test_bench_group_keeps_its_subcommands_and_checks_options(tiny_model_dir, workload, tmp_path):
    res = runner.invoke(app, ["bench"])
    assert res.exit_code == 0
    for name in ("tree", "replay", "scaling", "plot"):
        assert name in res.output
    res = runner.invoke(app, ["bench", "--workload", str(workload), "--methods", "vanilla,magic"])
    assert res.exit_code == 2 and "magic" in res.output
    res = runner.invoke(app, ["bench", "--workload", str(workload), "--device", "tpu"])
    assert res.exit_code == 2 and "--device" in res.output
    res = runner.invoke(app, ["bench", "--workload", str(tmp_path / "missing.jsonl"), "--model", str(tiny_model_dir)])
    assert res.exit_code == 1 and "missing.jsonl" in res.output
    out = tmp_path / "out"
    _bench(tiny_model_dir, workload, tmp_path, "--methods", "vanilla,suffix-tree", "--sizing", "fixed")
    res = runner.invoke(app, ["bench", "plot", str(out / "results.json"), "--out", str(tmp_path / "p")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "p" / "speedup.png").exists()
