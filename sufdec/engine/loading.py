"""Load a target model for tree verification, and convert GGUF files to safetensors.

``spec`` may be a local Hugging Face folder, a GGUF file (or a folder holding one GGUF
file), or a hub id (works where a hub is reachable or the model is cached). GGUF weights
are dequantized to a dense model by transformers (needs ``gguf`` and ``accelerate``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from sufdec.tokenization import remote_code_refused

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
}


class ModelLoadError(RuntimeError):
    """The model could not be loaded (the message says why and what to try)."""


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_dtype(dtype: str | torch.dtype = "auto", device: torch.device | None = None) -> torch.dtype:
    """auto: bfloat16 on CUDA, float32 elsewhere."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        return torch.bfloat16 if device is not None and device.type == "cuda" else torch.float32
    if dtype not in _DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; use one of auto, {', '.join(sorted(_DTYPES))}")
    return _DTYPES[dtype]


def resolve_attn(attn: str, config: Any) -> str:
    """sdpa unless the model needs eager (logit softcapping, which sdpa drops)."""
    if attn.startswith("flash") or attn in ("flex_attention", "paged_attention"):
        raise ValueError(f"attention {attn!r} cannot take the 4D tree masks speculation needs: use 'sdpa' or 'eager'")
    if attn not in ("auto", "sdpa", "eager"):
        raise ValueError(f"unknown attention implementation {attn!r}: use auto, sdpa or eager")
    if attn != "auto":
        return attn
    text_cfg = config.get_text_config(decoder=True)
    if getattr(text_cfg, "attn_logit_softcapping", None) is not None or text_cfg.model_type == "gemma2":
        return "eager"
    return "sdpa"


def split_model_path(model: str | Path, gguf_file: str | None = None) -> tuple[str, str | None]:
    """(folder or hub id, GGUF file name or None) for a model folder, GGUF file or hub id."""
    path = Path(model).expanduser()
    if gguf_file is not None:
        return str(path), gguf_file
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise ModelLoadError(f"{path} is a file but not a .gguf file")
        return str(path.parent), path.name
    if path.is_dir():
        if (path / "config.json").is_file():
            return str(path), None
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            return str(path), ggufs[0].name
        if len(ggufs) > 1:
            raise ModelLoadError(f"{path} holds several GGUF files; name one: {[g.name for g in ggufs]}")
        raise ModelLoadError(f"{path} holds neither config.json nor a .gguf file")
    return str(model), None  # a hub id


def load_model(
    model: str | Path,
    device: str | torch.device = "auto",
    dtype: str | torch.dtype = "auto",
    device_map: str | dict | None = None,
    attn: str = "auto",
    gguf_file: str | None = None,
    trust_remote_code: bool = False,
) -> tuple[torch.nn.Module, Any]:
    """(model in eval mode, tokenizer) ready for SpeculativeGenerator.

    A model folder's own Python code (an ``auto_map`` in its config) runs only with
    ``trust_remote_code=True``; otherwise such a folder is refused (never a question on
    standard input, which transformers asks when the flag is left unset)."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    where, gguf = split_model_path(model, gguf_file)
    dev = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, dev)
    extra: dict[str, Any] = {"gguf_file": gguf} if gguf else {}
    extra["trust_remote_code"] = bool(trust_remote_code)
    try:
        config = AutoConfig.from_pretrained(where, **extra)
        impl = resolve_attn(attn, config)
        loaded = AutoModelForCausalLM.from_pretrained(
            where, dtype=torch_dtype, attn_implementation=impl, device_map=device_map, **extra
        )
        tokenizer = AutoTokenizer.from_pretrained(where, **extra)
    except (OSError, ValueError, ImportError) as exc:
        if isinstance(exc, ValueError) and "cannot take" in str(exc):
            raise
        refused = remote_code_refused(model, exc)
        if refused is not None:
            raise ModelLoadError(refused) from None
        raise ModelLoadError(f"could not load model {model!r}: {exc}") from exc
    if device_map is None:
        loaded.to(dev)
    loaded.eval()
    return loaded, tokenizer


def convert_gguf_to_safetensors(
    gguf_path: str | Path, out_dir: str | Path, dtype: str | torch.dtype = "float32"
) -> Path:
    """Dequantize a GGUF file once into a dense safetensors folder (with its tokenizer),
    which later loads in a fraction of the time."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path = Path(gguf_path)
    out = Path(out_dir)
    where, name = str(gguf_path.parent), gguf_path.name
    model = AutoModelForCausalLM.from_pretrained(
        where, gguf_file=name, dtype=resolve_dtype(dtype), trust_remote_code=False
    )
    tokenizer = AutoTokenizer.from_pretrained(where, gguf_file=name, trust_remote_code=False)
    # a GGUF-loaded model carries a quantizer that makes save_pretrained refuse it
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
