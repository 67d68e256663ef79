"""Measure what a forward over k new tokens costs, relative to one token.

A short calibration at load: a few forwards at each k over a realistic past length, the
fastest time per k, normalised by k=1. The resulting CostModel is kept beside the model
object itself (a weak-keyed map: it goes with the model, and a new model never inherits an
old one's curve), per device and dtype, so every generator over the same model shares it.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Sequence

import torch

from sufdec.drafters.sizing import CostModel
from sufdec.engine.head import verify_forward_for
from sufdec.engine.kv import cache_kwargs, crop_last, new_cache, settle

DEFAULT_KS = (1, 2, 4, 8, 16, 32, 64)
_CURVES: "weakref.WeakKeyDictionary[torch.nn.Module, dict[tuple, CostModel]]" = weakref.WeakKeyDictionary()


def cost_model_for(model: torch.nn.Module, **kwargs) -> CostModel:
    """The cost curve of ``model`` on its current device and dtype, measured on first request."""
    p = next(model.parameters())
    curves = _CURVES.setdefault(model, {})
    key = (str(p.device), str(p.dtype))
    if key not in curves:
        curves[key] = measure_cost_model(model, **kwargs)
    return curves[key]


@torch.inference_mode()
def measure_forward_times(
    model: torch.nn.Module,
    ks: Sequence[int] = DEFAULT_KS,
    past_len: int = 256,
    repeats: int = 4,
    seed: int = 0,
    budget_s: float = 6.0,
) -> list[float]:
    """Seconds of one forward over k new tokens after ``past_len`` cached ones, for each k
    of ``fitting_ks(model, ks)`` (a small context shortens both the ks and the past).

    The ks are timed in interleaved rounds and each keeps its fastest run: on a shared
    machine a burst of load then slows one round, not one k, and the minimum is the best
    estimate of the uncontended cost. Rounds stop early once ``budget_s`` is spent (at least
    one is always measured). The forward is the engine's (``head.VerifyForward``); the
    model builds its own causal mask here; a tree mask of the same size costs the same.
    """
    device = model.get_input_embeddings().weight.device
    vocab = model.config.get_text_config(decoder=True).vocab_size
    gen = torch.Generator().manual_seed(seed)
    ks = fitting_ks(model, ks)
    past_len = max(0, min(past_len, _context(model) - max(ks) - 1))
    cache = new_cache(model)
    if past_len:
        prefix = torch.randint(0, vocab, (1, past_len), generator=gen).to(device)
        model(input_ids=prefix, use_cache=True, logits_to_keep=1, **cache_kwargs(model, cache))
        settle(cache)
    forward = verify_forward_for(model)  # the engine's verification forward
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda *_: None)
    inputs = []
    for k in ks:
        ids = torch.randint(0, vocab, (1, k), generator=gen).to(device)
        pos = torch.arange(past_len, past_len + k, device=device)[None]  # [1, k]
        inputs.append((k, ids, pos))
    best = [float("inf")] * len(ks)
    start = time.perf_counter()
    for r in range(repeats + 1):  # round 0 warms up
        if r > 1 and time.perf_counter() - start > budget_s:
            break
        for i, (k, ids, pos) in enumerate(inputs):
            sync()
            t0 = time.perf_counter()
            forward(ids, pos, None, cache)
            sync()
            if r:
                best[i] = min(best[i], time.perf_counter() - t0)
            crop_last(cache, k)
    return best


def measure_cost_model(model: torch.nn.Module, ks: Sequence[int] = DEFAULT_KS, **kwargs) -> CostModel:
    """Measure and normalise the forward-cost curve of ``model``."""
    ks = fitting_ks(model, ks)
    return CostModel.from_times(ks, measure_forward_times(model, ks, **kwargs))


def _context(model: torch.nn.Module) -> int:
    return getattr(model.config.get_text_config(decoder=True), "max_position_embeddings", None) or 4096


def fitting_ks(model: torch.nn.Module, ks: Sequence[int]) -> list[int]:
    """The ks (ascending, 1 first) that fit twice into the model's context."""
    return sorted({1, *(int(k) for k in ks if 1 <= k <= _context(model) // 2)})
