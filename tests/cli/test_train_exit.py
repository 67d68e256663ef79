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
    gen = [
        "generate",
        "--model",
        str(tiny_model_dir),
        "--store",
        str(store),
        "--prompt",
        "SELECT name FROM",
        "--max-new-tokens",
        "16",
        "--json",
        "--no-learn",
    ]
    res = runner.invoke(app, gen + ["--spec", "eesd"])
    assert res.exit_code == 1 and "train-exit" in res.output  # none trained yet: one line says how
    res = runner.invoke(
        app, ["index", str(_outputs(tmp_path / "out.jsonl")), "--store", str(store), "--tokenizer", str(tiny_model_dir)]
    )
    assert res.exit_code == 0, res.output
    res = runner.invoke(
        app,
        [
            "train-exit",
            "--model",
            str(tiny_model_dir),
            "--store",
            str(store),
            "--layer",
            "1",
            "--steps",
            "3",
            "--draft-vocab",
            "0",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout.strip().splitlines()[-1])
    assert info["layer"] == 1 and info["steps"] == 3 and info["data_sequences"] == 60
    said = " ".join(res.output.split())  # rich folds long lines
    assert "training: 3/3, loss" in said  # progress as lines where standard error is no terminal
    assert "shared by every clone and checkout (--out or $SUFDEC_CACHE_DIR keeps a run apart)" in said
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


def test_train_exit_checks_the_layer_before_loading_the_model(tmp_path, tiny_model_dir, monkeypatch):
    """Issue 20 item 4: an out-of-range --layer used to be refused only after the model
    and the data had loaded; it is read against the folder's config first."""
    import sufdec.engine.loading as loading

    def no_load(*_a, **_k):
        raise AssertionError("the model was loaded before --layer was checked")

    monkeypatch.setattr(loading, "load_model", no_load)
    src = _outputs(tmp_path / "out.jsonl")
    n = json.loads((tiny_model_dir / "config.json").read_text())["num_hidden_layers"]
    for args, words in (
        (["--layer", str(n)], f"--layer must be between 1 and {n - 1} for this {n}-layer model"),
        (["--layer", "1", "--init-from", "99"], "--init-from must be a layer index between 0 and"),
    ):
        res = runner.invoke(app, ["train-exit", "--model", str(tiny_model_dir), "--data", str(src), *args])
        assert res.exit_code == 2 and words in res.output, res.output


def test_a_damaged_exit_layer_is_one_line_for_eesd_and_a_fallback_for_hybrid(tmp_path, tiny_model_dir, monkeypatch):
    """Issue 20 item 3 through the CLI: --spec eesd refuses in one line; --spec hybrid says
    so once and drafts from the suffix trees, as it does when no layer exists."""
    monkeypatch.setenv("SUFDEC_CACHE_DIR", str(tmp_path / "cache"))
    res = runner.invoke(
        app,
        [
            "train-exit",
            "--model",
            str(tiny_model_dir),
            "--data",
            str(_outputs(tmp_path / "o.jsonl")),
            "--layer",
            "1",
            "--steps",
            "1",
            "--draft-vocab",
            "0",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    meta = json.loads(res.stdout.strip().splitlines()[-1])["path"].replace(".safetensors", ".json")
    with open(meta, "w") as f:
        f.write("{garbage")
    gen = [
        "generate",
        "--model",
        str(tiny_model_dir),
        "--store",
        str(tmp_path / "s"),
        "--prompt",
        "SELECT name",
        "--max-new-tokens",
        "4",
        "--json",
        "--no-learn",
    ]
    res = runner.invoke(app, gen + ["--spec", "eesd"])
    errors = [line for line in res.output.splitlines() if line.startswith("error:")]
    assert res.exit_code == 1 and len(errors) == 1 and "is damaged" in errors[0] and "Traceback" not in res.output
    res = runner.invoke(app, gen + ["--spec", "hybrid"])
    assert res.exit_code == 0, res.output
    said = " ".join(res.output.split())
    assert said.count("hybrid drafts from the suffix trees only") == 1 and "is damaged" in said
