"""The verification forward: the model over a step's tokens, and its LM head computed the
faster of two measured ways.

On a CPU, torch's ``linear`` (rows @ weight^T, MKL) is slow for a handful of rows of a large
head. Measured on the 2-core VM (torch 2.13, float32, SmolLM2-135M's tied 49,152 x 576 head,
median of 20): one row 9.8 ms; 2 / 3 / 4 / 8 rows 22.9 / 33.2 / 17.2 / 19.4 ms at one thread
and 22.5 / 33.2 / 17.0 / 15.9 ms at two, where ``weight @ rows^T`` costs 5.7 / 8.0 / 8.5 /
13.6 ms and 3.6 / 4.2 / 4.3 / 7.2 ms. A forward verifying a draft of one token then paid 13
of its extra 31 ms in the head alone. ``VerifyForward`` runs the model's decoder and
computes the head itself, per number of rows by whichever of the two it timed faster on
this machine (once per size class, on the first forward of that size).

Both ways sum the same float32 products in another order, as any multi-row forward already
does against the one-row forward of plain decoding; one row keeps the model's own forward,
so a step without a draft computes exactly what plain decoding computes. Used only where it
is the same function: a bias-free linear head right after the decoder (checked once per
model against the model's own forward: a logit soft-cap or scale there turns it off), on
the CPU (GPU kernels have no such cliff).
"""

from __future__ import annotations

import time
import weakref
from typing import Any

import torch

from sufdec.engine.kv import cache_kwargs, new_cache

_FORWARDS: "weakref.WeakKeyDictionary[torch.nn.Module, VerifyForward]" = weakref.WeakKeyDictionary()


def verify_forward_for(model: torch.nn.Module) -> "VerifyForward":
    """The verification forward of ``model`` (made and checked on first use, then shared)."""
    if model not in _FORWARDS:
        _FORWARDS[model] = VerifyForward(model)
    return _FORWARDS[model]


def _size_class(rows: int) -> int:
    """Rows rounded up to a power of two: one timing decision per class."""
    return 1 << max(0, rows - 1).bit_length()


class VerifyForward:
    """``forward(ids, pos, mask, cache)`` -> logits ``[q, V]`` of one request's step."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = weakref.ref(model)  # the model owns this object (via _FORWARDS), not back
        self.base: Any = None  # the decoder, where the head may be computed here
        self.weight: torch.Tensor | None = None
        self.transposed: dict[int, bool] = {}  # size class -> weight @ rows^T is the faster way
        head = model.get_output_embeddings()
        base = getattr(model, "model", None)
        if (
            isinstance(head, torch.nn.Linear)
            and head.bias is None
            and isinstance(base, torch.nn.Module)
            and head.weight.device.type == "cpu"
            and self._same_function(model, base, head.weight)
        ):
            self.base, self.weight = base, head.weight

    @staticmethod
    @torch.inference_mode()
    def _same_function(model: torch.nn.Module, base: torch.nn.Module, weight: torch.Tensor) -> bool:
        """Whether decoder + ``weight`` gives the model's logits (two tokens, throwaway caches)."""
        ids = torch.tensor([[0, 1]], device=weight.device)
        try:
            full = model(input_ids=ids, use_cache=True, **cache_kwargs(model, new_cache(model))).logits[0]
            cache = new_cache(model)
            hidden = base(input_ids=ids, use_cache=True, **cache_kwargs(base, cache)).last_hidden_state[0]
        except (TypeError, ValueError, AttributeError, RuntimeError):
            return False
        mine = (weight @ hidden.T).T
        scale = float(full.abs().max()) + 1.0
        return mine.shape == full.shape and float((mine - full).abs().max()) <= 1e-3 * scale

    def __call__(self, ids: torch.Tensor, pos: torch.Tensor, mask: Any, cache: Any) -> torch.Tensor:
        if self.base is None or ids.shape[1] == 1:
            model = self.model()
            assert model is not None
            out = model(
                input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, **cache_kwargs(model, cache)
            )
            return out.logits[0]  # [q, V]
        out = self.base(
            input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, **cache_kwargs(self.base, cache)
        )
        return self.head(out.last_hidden_state[0])  # [q, V]

    def head(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits of ``hidden`` [q, H] by the way timed faster for q's size class."""
        w = self.weight
        assert w is not None
        size = _size_class(hidden.shape[0])
        if size not in self.transposed:
            self.transposed[size] = _fastest(lambda: (w @ hidden.T).T, lambda: torch.nn.functional.linear(hidden, w))
        return (w @ hidden.T).T if self.transposed[size] else torch.nn.functional.linear(hidden, w)


def _fastest(first: Any, second: Any, repeats: int = 3) -> bool:
    """Whether ``first`` ran faster than ``second`` (best of ``repeats`` each, interleaved)."""
    best = [float("inf"), float("inf")]
    for _ in range(repeats):
        for i, f in enumerate((first, second)):
            t0 = time.perf_counter()
            f()
            best[i] = min(best[i], time.perf_counter() - t0)
    return best[0] < best[1]
