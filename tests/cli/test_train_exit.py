"""train-exit and generate --spec eesd through typer's CliRunner on a tiny model."""

import json
import random

from typer.testing import CliRunner

from sufdec.cli.app import app
from tests.conftest import SQL_WORDS

runner = CliRunner()


def _outputs(path, n=60, seed=0):
    rng = random.Random(seed)
    lines = [{"text": " ".join(rng.choice(SQL_WORDS) for _ in range(rng.randint(8, 20)))} for _ in range(n)]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return path


def test_train_exit_then_generate_with_it(tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("SUFDEC_CACHE_DIR", str(tmp_path / "cache"))
    store = tmp_path / "store"
    gen = ["generate", "--model", str(tiny_model_dir), "--store", str(store), "--prompt", "SELECT name FROM",
           "--max-new-tokens", "16", "--json", "--no-learn"]
    res = runner.invoke(app, gen + ["--spec", "eesd"])
    assert res.exit_code == 1 and "train-exit" in res.output  # none trained yet: one line says how
    res = runner.invoke(app, ["index", str(_outputs(tmp_path / "out.jsonl")), "--store", str(store),
                              "--tokenizer", str(tiny_model_dir)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["train-exit", "--model", str(tiny_model_dir), "--store", str(store), "--layer", "1",
                              "--steps", "3", "--draft-vocab", "0", "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout.strip().splitlines()[-1])
    assert info["layer"] == 1 and info["steps"] == 3 and info["data_sequences"] == 60
    assert 0 <= info["held_out_acceptance"] <= 1 and str(tmp_path / "cache") in info["path"]
    plain = json.loads(runner.invoke(app, gen + ["--spec", "off"]).stdout.strip().splitlines()[-1])
    res = runner.invoke(app, gen + ["--spec", "eesd", "--sizing", "fixed"])
    assert res.exit_code == 0, res.output
    eesd = json.loads(res.stdout.strip().splitlines()[-1])
    assert eesd["text"] == plain["text"] and eesd["spec"] == "eesd"


def test_train_exit_refuses_too_little_data(tmp_path, tiny_model_dir):
    src = tmp_path / "few.jsonl"
    src.write_text('{"text": "SELECT name"}\n')
    res = runner.invoke(app, ["train-exit", "--model", str(tiny_model_dir), "--data", str(src), "--layer", "1"])
    assert res.exit_code == 2 and "at least 256" in res.output
