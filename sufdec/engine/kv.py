"""KV-cache bookkeeping for tree verification on a transformers ``DynamicCache``.

After a verification forward the cache holds the root and every tree row; only the root
and the accepted path stay. The path rows are moved down onto the first slots of the new
block (a copy of at most depth-many positions per layer), then ``crop(-n)`` drops the rest:
that public call also keeps sliding-window layers' bookkeeping right. A chain accepted from
its start needs no copy at all.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from functools import lru_cache

import torch
from transformers import DynamicCache


def cache_kwargs(model: torch.nn.Module, cache: DynamicCache) -> dict:
    """``{name: cache}`` for a forward call, under the name the installed transformers wants:
    ``cache`` where the model's forward takes it (newer releases, where ``past_key_values``
    is deprecated), else ``past_key_values`` (5.17 and other older releases)."""
    return {_cache_arg(type(model)): cache}


@lru_cache(maxsize=None)
def _cache_arg(model_class: type) -> str:
    params = inspect.signature(model_class.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def new_cache(model: torch.nn.Module) -> DynamicCache:
    """A DynamicCache shaped by the model config (sliding-window layers included) that can
    roll back: sliding layers keep every new key until the next ``crop``."""
    cache = DynamicCache(config=model.config)
    if hasattr(cache, "activate_past_recording"):
        cache.activate_past_recording()
    elif has_sliding_layers(cache):
        raise RuntimeError(
            "this transformers version cannot roll back sliding-window caches "
            "(no Cache.activate_past_recording): upgrade transformers for this model"
        )
    return cache


def has_sliding_layers(cache: DynamicCache) -> bool:
    return any(getattr(layer, "is_sliding", False) for layer in cache.layers)


def settle(cache: DynamicCache) -> None:
    """After a forward that only appended (a prefill): shrink recording sliding layers back
    to their window. transformers 5.17 hands a recording layer's whole past to the next
    forward while the mask it builds covers only the window, so that forward would fail
    (later releases slice it themselves); ``crop(0)`` leaves full-attention layers as they are."""
    if has_sliding_layers(cache):
        cache.crop(0)


def commit_path(cache: DynamicCache, num_new: int, keep: Sequence[int]) -> None:
    """Keep rows ``keep`` (ascending, within the last ``num_new`` cached positions) and
    drop the other rows of that block."""
    k = len(keep)
    if any(r != i for i, r in enumerate(keep)):
        for layer in cache.layers:
            _move_rows(layer, num_new, keep)
    drop = num_new - k
    if drop > 0:
        cache.crop(-drop)
    elif has_sliding_layers(cache):
        cache.crop(0)  # sliding layers recording the past shrink back to their window


def _move_rows(layer: object, num_new: int, keep: Sequence[int]) -> None:
    keys = getattr(layer, "keys", None)
    values = getattr(layer, "values", None)
    if keys is None or values is None or keys.dim() != 4 or keys.shape[-2] < num_new:
        return  # uninitialised or KV-sharing layer: nothing stored here
    base = keys.shape[-2] - num_new
    idx = torch.tensor(keep, dtype=torch.long, device=keys.device) + base
    k = len(keep)
    # index_select copies first, and keep[i] >= i, so the in-place write is safe
    keys[:, :, base : base + k] = keys.index_select(2, idx)  # [B, H_kv, k, D]
    values[:, :, base : base + k] = values.index_select(2, idx)  # [B, H_kv, k, D]


def crop_last(cache: DynamicCache, n: int) -> None:
    """Remove the last ``n`` cached positions (calibration and rollbacks)."""
    if n > 0:
        cache.crop(-n)


def mask_kinds(model: torch.nn.Module) -> dict[str, int | None]:
    """Layer type -> sliding window (None for full attention), as the model's cache sees it."""
    cache = new_cache(model)
    text_cfg = model.config.get_text_config(decoder=True)
    names = getattr(text_cfg, "layer_types", None)
    kinds: dict[str, int | None] = {}
    layers = list(cache.layers)
    if not layers:  # lazily built cache: every layer is full attention
        return {"full_attention": None}
    for i, layer in enumerate(layers):
        window = getattr(layer, "sliding_window", None) if getattr(layer, "is_sliding", False) else None
        name = (
            names[i]
            if names is not None and i < len(names)
            else ("sliding_attention" if window is not None else "full_attention")
        )
        if name == "chunked_attention":
            raise ValueError("chunked-attention models are not supported by tree verification")
        if name in ("dummy", "moe", "mlp"):
            continue
        if kinds.get(name, window) != window:
            raise ValueError(f"layers of type {name!r} disagree on their sliding window")
        kinds[name] = window
    if len(kinds) > 1 and names is None:
        raise ValueError("mixed sliding/full layers without config.layer_types are not supported")
    return kinds or {"full_attention": None}
