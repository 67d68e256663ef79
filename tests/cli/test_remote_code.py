"""Issue 20 item 1: a model folder's own Python code (an ``auto_map`` in its config) runs
only when the user passed --trust-remote-code, never on a "y" that happens to be on
standard input (transformers asks there when the flag is left unset)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

CUSTOM_CODE = """import os
from pathlib import Path

Path(os.environ["SUFDEC_TEST_MARK"]).write_text("the folder's code ran")

from transformers import LlamaConfig, LlamaForCausalLM


class CustomConfig(LlamaConfig):
    model_type = "sufdec_custom"


class CustomModel(LlamaForCausalLM):
    config_class = CustomConfig
"""


def _custom_code_model(tiny_model_dir: Path, folder: Path) -> Path:
    """The tiny model, with a model type transformers does not know and the code for it."""
    shutil.copytree(tiny_model_dir, folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["model_type"] = "sufdec_custom"
    cfg["auto_map"] = {"AutoConfig": "custom.CustomConfig", "AutoModelForCausalLM": "custom.CustomModel"}
    (folder / "config.json").write_text(json.dumps(cfg))
    (folder / "custom.py").write_text(CUSTOM_CODE)
    return folder


def _run(mark: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, SUFDEC_TEST_MARK=str(mark))
    return subprocess.run(
        [sys.executable, "-m", "sufdec", *args],
        cwd=REPO,
        input="y\ny\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_model_folders_code_runs_only_with_the_flag(tiny_model_dir: Path, tmp_path: Path) -> None:
    model = _custom_code_model(tiny_model_dir, tmp_path / "model")
    mark = tmp_path / "ran"
    data = tmp_path / "data.jsonl"
    data.write_text('{"text": "select name from singer"}\n')
    for args in (
        ("generate", "--model", str(model), "-p", "hi", "-n", "2", "--no-learn"),
        ("train-exit", "--model", str(model), "--data", str(data), "--out", str(tmp_path / "exit")),
    ):
        res = _run(mark, *args)
        assert res.returncode == 1, (args, res.stdout, res.stderr[-3000:])
        errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "--trust-remote-code" in errors[0], res.stderr[-3000:]
        assert "Traceback" not in res.stderr and "Do you wish" not in res.stderr + res.stdout
        assert not mark.exists(), f"{args[0]} ran the folder's code without --trust-remote-code"
    res = _run(mark, "generate", "--model", str(model), "-p", "hi", "-n", "2", "--no-learn", "--trust-remote-code")
    assert res.returncode == 0, res.stderr[-3000:]
    assert mark.exists(), "--trust-remote-code must let the folder's code run"


def test_the_flag_is_explained_in_help() -> None:
    from typer.testing import CliRunner

    from sufdec.cli.app import app

    for command in ("generate", "train-exit", "bench", "index", "stats"):
        res = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})
        assert "--trust-remote-code" in res.output, command
