"""The early-exit draft model: the target's first N layers, one trained exit layer, the
target's own final norm and LM head (EESD, Liu et al., ACL 2024 Findings, arXiv 2406.03853).

The draft model is an instance of the target's own class with ``N + 1`` layers whose
modules are the target's (shared, frozen: no weight is copied) except layer ``N``, the
exit layer, which is a trained copy of one target layer. Being a stock model of the same
class, it gets masks, rotary embeddings, sliding windows and embedding scaling exactly as
the target does, and runs with a ``DynamicCache`` of its own.

Only the exit layer is saved: a small safetensors file plus metadata (the target's
fingerprint, N, which layer it started from, training figures). ``fingerprint`` ties it to
one target: loading it onto another model is refused with one line.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

SUPPORTED = ("llama", "qwen2", "qwen3", "mistral", "gemma3_text", "gemma3", "gemma2", "phi3", "olmo2", "granite")
EXIT_FORMAT = 1


class ExitLayerError(ValueError):
    """An exit layer cannot be built, saved or loaded for this model (the message says why)."""


@dataclass(frozen=True)
class ExitLayerInfo:
    """What is saved beside the exit layer's weights."""

    fingerprint: str  # the target's (``model_fingerprint``)
    layer: int  # N: the exit layer reads the output of the first N layers
    init_from: int  # the target layer it was copied from before training
    num_layers: int  # the target's layer count
    model_name: str = ""
    data_sequences: int = 0
    data_tokens: int = 0
    steps: int = 0
    final_loss: float | None = None
    held_out_acceptance: float | None = None  # greedy top-1 agreement with the target on held-out text
    train_seconds: float = 0.0
    format: int = EXIT_FORMAT
    extra: dict = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> "ExitLayerInfo":
        data = json.loads(text)
        if data.get("format", 0) > EXIT_FORMAT:
            raise ExitLayerError("the exit layer was saved by a newer sufdec: upgrade sufdec to load it")
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


def _text_config(model: torch.nn.Module) -> Any:
    return model.config.get_text_config(decoder=True)


def _decoder(model: torch.nn.Module) -> Any:
    """The model's decoder stack (``model.model`` for the causal LMs sufdec supports)."""
    inner = getattr(model, "model", None)
    if inner is None or not isinstance(getattr(inner, "layers", None), torch.nn.ModuleList):
        raise ExitLayerError(
            f"{type(model).__name__} has no model.layers stack: early exit supports decoder-only "
            f"models of the families {', '.join(SUPPORTED)}"
        )
    return inner


def check_supported(model: torch.nn.Module) -> None:
    """Raise ExitLayerError, one line, when early exit cannot be built for ``model``."""
    cfg = _text_config(model)
    if cfg.model_type not in SUPPORTED:
        raise ExitLayerError(
            f"early exit is not supported for model type {cfg.model_type!r} (supported: {', '.join(SUPPORTED)})"
        )
    _decoder(model)
    if getattr(cfg, "layer_types", None) and "chunked_attention" in cfg.layer_types:
        raise ExitLayerError("chunked-attention models are not supported")


def model_fingerprint(model: torch.nn.Module) -> str:
    """A stable hash of the target: its config and a sample of its embedding, first layer and head."""
    cfg = _text_config(model).to_dict()
    for key in (
        "_name_or_path",
        "transformers_version",
        "dtype",
        "torch_dtype",
        "_attn_implementation",
        "_attn_implementation_autoset",
        "use_cache",
    ):
        cfg.pop(key, None)
    h = hashlib.blake2b(json.dumps(cfg, sort_keys=True, default=str).encode(), digest_size=16)
    samples = [model.get_input_embeddings().weight, model.get_output_embeddings().weight]
    samples += [p for _, p in list(_decoder(model).layers[0].named_parameters())[:2]]
    for t in samples:
        flat = t.detach().reshape(-1)[:4096].to(device="cpu", dtype=torch.float32)
        h.update(flat.numpy().round(4).tobytes())
    return h.hexdigest()


def default_layer(model: torch.nn.Module) -> int:
    """An eighth of the layers (at least 1): 4 of 30 for the default model. Measured there
    (docs/BENCHMARKS.md, EESD third slice): each layer adds ~1.5 ms to a ~10 ms draft step
    (a 57 ms forward), while N = 8 and 12 draft only 1 and 6 points more often right than
    N = 4 at the same training; training longer gains more (+11 points from 150 to 900 steps)."""
    return max(1, round(_text_config(model).num_hidden_layers / 8))


def new_exit_layer(model: torch.nn.Module, layer: int, init_from: int | None = None) -> torch.nn.Module:
    """A trainable copy of target layer ``init_from`` (default: the last layer, whose output is
    already in the space the final norm and LM head read) to sit at index ``layer``."""
    check_supported(model)
    layers = _decoder(model).layers
    n = len(layers)
    if not 1 <= layer < n:
        raise ExitLayerError(f"--layer must be between 1 and {n - 1} for this {n}-layer model, not {layer}")
    src = n - 1 if init_from is None else init_from
    if not 0 <= src < n:
        raise ExitLayerError(f"init_from must be a layer index below {n}")
    exit_layer = copy.deepcopy(layers[src])
    _renumber(exit_layer, layer)
    exit_layer.sufdec_init_from = src
    return exit_layer


def _renumber(module: torch.nn.Module, index: int) -> None:
    """Give a copied layer its new position (the cache slot it writes)."""
    for sub in module.modules():
        if hasattr(sub, "layer_idx"):
            sub.layer_idx = index


def build_draft_model(model: torch.nn.Module, exit_layer: torch.nn.Module, layer: int) -> torch.nn.Module:
    """The draft model: an instance of ``type(model)`` with ``layer + 1`` layers sharing every
    module of ``model`` but the last, which is ``exit_layer``."""
    check_supported(model)
    cfg = copy.deepcopy(model.config)
    text = cfg.get_text_config(decoder=True)
    src = getattr(exit_layer, "sufdec_init_from", len(_decoder(model).layers) - 1)
    types = getattr(text, "layer_types", None)
    text.num_hidden_layers = layer + 1
    if types:
        text.layer_types = list(types[:layer]) + [types[src]]
    with torch.device("meta"):
        draft = type(model)(cfg)
    target_decoder, draft_decoder = _decoder(model), _decoder(draft)
    for name, child in list(target_decoder.named_children()):
        if name != "layers":
            setattr(draft_decoder, name, child)
    draft_decoder.layers = torch.nn.ModuleList(list(target_decoder.layers[:layer]) + [exit_layer])
    for name, child in list(model.named_children()):
        if child is not target_decoder:
            setattr(draft, name, child)
    leftover = [n for n, p in list(draft.named_parameters()) + list(draft.named_buffers()) if p.is_meta]
    if leftover:
        raise ExitLayerError(
            f"cannot share the target's modules with a draft model of {type(model).__name__}: {leftover[:3]} stay unset"
        )
    draft.config._attn_implementation = model.config._attn_implementation
    draft.generation_config = model.generation_config
    draft.eval()
    return draft


def exit_paths(folder: Path, layer: int) -> tuple[Path, Path]:
    """(weights, metadata) file paths of the exit layer at ``layer`` in ``folder``."""
    return folder / f"exit-layer-{layer}.safetensors", folder / f"exit-layer-{layer}.json"


def default_folder(cache_root: Path, fingerprint: str) -> Path:
    """Where exit layers trained for the model with ``fingerprint`` are kept in the cache."""
    return Path(cache_root) / "exit-layers" / fingerprint


def save_exit_layer(exit_layer: torch.nn.Module, info: ExitLayerInfo, folder: Path) -> Path:
    """Write weights and metadata atomically (a temporary file each, then a rename)."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    weights, meta = exit_paths(folder, info.layer)
    state = {k: v.detach().to("cpu").contiguous() for k, v in exit_layer.state_dict().items()}
    tmp_w, tmp_m = weights.with_name(weights.name + ".tmp"), meta.with_name(meta.name + ".tmp")
    save_file(state, str(tmp_w), metadata={"sufdec": "exit-layer", "fingerprint": info.fingerprint})
    tmp_m.write_text(info.to_json())
    tmp_w.replace(weights)
    tmp_m.replace(meta)
    return weights


def find_exit_layer(folder: Path, layer: int | None = None) -> Path | None:
    """The weights file of the exit layer at ``layer`` (None: the most recently trained) in ``folder``."""
    if layer is not None:
        path = exit_paths(folder, layer)[0]
        return path if path.is_file() else None
    found = sorted(folder.glob("exit-layer-*.safetensors"), key=lambda p: p.stat().st_mtime) if folder.is_dir() else []
    return found[-1] if found else None


def _check_info(info: ExitLayerInfo) -> None:
    """The saved fields have the types they must have (a hand-edited file, a damaged one)."""
    for name in ("layer", "init_from", "num_layers"):
        value = getattr(info, name)
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f'"{name}" is {value!r}, not a layer number')
    if not isinstance(info.fingerprint, str) or not isinstance(info.extra, dict):
        raise TypeError('"fingerprint" or "extra" has the wrong type')


def _check_vocab(info: ExitLayerInfo, vocab_size: int, meta: Path, damaged: str) -> None:
    """The draft vocabulary's ids exist in the model's vocabulary."""
    vocab = info.extra.get("draft_vocab")
    if vocab is None:
        return
    if not isinstance(vocab, list) or not all(isinstance(t, int) and not isinstance(t, bool) for t in vocab):
        raise ExitLayerError(
            f"the exit layer's {meta} is damaged (its draft vocabulary is not a list of token ids); {damaged}"
        )
    bad = [t for t in vocab if not 0 <= t < vocab_size]
    if bad:
        raise ExitLayerError(
            f"the exit layer's {meta} names token id {bad[0]}, outside this model's vocabulary of "
            f"{vocab_size:,}; {damaged}"
        )


def check_state(exit_layer: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Every tensor of the layer, of its shape, floating point and finite."""
    mine = exit_layer.state_dict()
    missing, extra = sorted(set(mine) - set(state)), sorted(set(state) - set(mine))
    if missing or extra:
        raise ValueError(f"tensors missing {missing[:3]} or unexpected {extra[:3]}")
    for name, tensor in state.items():
        if tuple(tensor.shape) != tuple(mine[name].shape):
            raise ValueError(f"{name} has shape {tuple(tensor.shape)}, the model's layer {tuple(mine[name].shape)}")
        if not tensor.is_floating_point():
            raise ValueError(f"{name} holds {tensor.dtype}, not floating-point weights")
        if not bool(torch.isfinite(tensor).all()):
            raise ValueError(f"{name} holds non-finite weights (a run that diverged)")


def load_exit_layer(
    model: torch.nn.Module, weights: Path, fingerprint: str | None = None
) -> tuple[torch.nn.Module, ExitLayerInfo]:
    """(draft model, info) for ``model`` from a saved exit layer; refuses another model's.
    ``fingerprint``: ``model_fingerprint(model)`` when the caller already has it."""
    from safetensors.torch import load_file

    weights = Path(weights)
    meta = weights.with_suffix(".json")
    if not weights.is_file() or not meta.is_file():
        raise ExitLayerError(f"no exit layer at {weights} (expected it and {meta.name} beside it)")
    damaged = f"train it again with `sufdec train-exit --fresh --layer N` (or delete {weights.name} and {meta.name})"
    try:
        info = ExitLayerInfo.from_json(meta.read_text(encoding="utf-8"))
        _check_info(info)
    except ExitLayerError:
        raise
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise ExitLayerError(f"the exit layer's {meta} is damaged ({type(exc).__name__}: {exc}); {damaged}") from None
    mine = fingerprint if fingerprint is not None else model_fingerprint(model)
    if info.fingerprint != mine:
        raise ExitLayerError(
            f"{weights.name} was trained for another model ({info.fingerprint[:12]}, "
            f"this one is {mine[:12]}): train one for this model with `sufdec train-exit`"
        )
    _check_vocab(info, _text_config(model).vocab_size, meta, damaged)
    exit_layer = new_exit_layer(model, info.layer, info.init_from)
    try:
        state = load_file(str(weights))
        check_state(exit_layer, state)
        exit_layer.load_state_dict(state)
    except Exception as exc:  # noqa: BLE001 - safetensors' own errors, shapes, missing tensors
        raise ExitLayerError(f"the exit layer {weights} is damaged ({type(exc).__name__}: {exc}); {damaged}") from None
    p = next(model.parameters())
    exit_layer.to(device=p.device, dtype=p.dtype).eval().requires_grad_(False)
    return build_draft_model(model, exit_layer, info.layer), info
