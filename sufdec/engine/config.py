"""What one request asks for, and how it is resolved against the model's own defaults.

``GenerationConfig`` holds what the caller chose; a field left at None means "what plain
``model.generate()`` would use": the model's ``generation_config`` first, then
transformers' global defaults (for example top-k 50 when the model samples and names no
top-k). ``resolve_generation`` turns it into a ``ResolvedGeneration`` with every value
fixed, once per request, so the decode loop never looks anything up again.

Our one convention on top of ``generate()``'s: a temperature given explicitly decides
whether to sample (``temperature > 0``) unless ``do_sample`` is also given; 0 is greedy.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

from sufdec.drafters.settings import DraftSettings
from sufdec.engine.accept import SamplingParams
from sufdec.engine.stopping import eos_ids_of

DEFAULT_MAX_NEW_TOKENS = 256  # when neither the caller nor the model's generation_config names one

# transformers' global defaults for the fields we read (used where an older release lacks
# ``GenerationConfig._get_default_generation_params``)
_HF_DEFAULTS = {
    "do_sample": False,
    "temperature": 1.0,
    "top_k": 50,
    "top_p": 1.0,
    "min_p": None,
    "repetition_penalty": 1.0,
}

# generation_config fields that make generate() apply a logits processor sufdec does not build
_UNSUPPORTED = {
    "no_repeat_ngram_size": lambda v: bool(v),
    "bad_words_ids": lambda v: bool(v),
    "suppress_tokens": lambda v: bool(v),
    "begin_suppress_tokens": lambda v: bool(v),
    "min_length": lambda v: bool(v),
    "min_new_tokens": lambda v: bool(v),
    "forced_bos_token_id": lambda v: v is not None,
    "forced_eos_token_id": lambda v: v is not None,
    "sequence_bias": lambda v: bool(v),
    "exponential_decay_length_penalty": lambda v: v is not None,
    "guidance_scale": lambda v: v not in (None, 1, 1.0),
    "renormalize_logits": lambda v: bool(v),
    "watermarking_config": lambda v: v is not None,
}
_UNSUPPORTED_SAMPLING = {
    "typical_p": lambda v: v is not None and v < 1.0,
    "epsilon_cutoff": lambda v: bool(v),
    "eta_cutoff": lambda v: bool(v),
    "top_h": lambda v: v is not None,
}


@dataclass(frozen=True)
class GenerationConfig:
    """How to generate one request; None fields take the model's own generation defaults.

    ``max_new_tokens``: None uses the model's ``generation_config.max_new_tokens``, else
    256. ``do_sample``/``temperature``/``top_k``/``top_p``/``min_p``/
    ``repetition_penalty``: None uses the model's, as ``generate()`` does; an explicit
    ``temperature`` of 0 is greedy, above 0 samples. ``seed``: None draws one from torch's
    global generator (so ``torch.manual_seed`` before a call reproduces it) without
    reseeding it. ``stop``: stop strings (empty: the model's ``stop_strings``, if any).
    ``eos_token_ids``: None uses the model's. ``draft``: this request's drafting settings
    (``DraftSettings``; ``spec="off"`` is plain decoding through the same loop); None: the
    drafting service's own (``SpeculativeGenerator.drafting.settings``).
    """

    max_new_tokens: int | None = None
    do_sample: bool | None = None
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    min_p: float | None = None
    repetition_penalty: float | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()
    eos_token_ids: tuple[int, ...] | None = None
    draft: DraftSettings | None = None

    def __post_init__(self) -> None:
        stop = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)
        object.__setattr__(self, "stop", stop)
        if self.eos_token_ids is not None:
            object.__setattr__(self, "eos_token_ids", tuple(int(e) for e in self.eos_token_ids))
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise ValueError("max_new_tokens must be >= 1")
        _check_sampling(self.temperature, self.top_k, self.top_p, self.min_p, self.repetition_penalty)
        if self.draft is not None and not isinstance(self.draft, DraftSettings):
            raise TypeError("draft must be a DraftSettings (see sufdec.suffix.settings)")


@dataclass(frozen=True)
class ResolvedGeneration:
    """A request's settings with every default looked up (what the decode loop reads)."""

    max_new_tokens: int
    sampling: SamplingParams
    seed: int | None
    stop: tuple[str, ...]
    eos: tuple[int, ...]
    draft: DraftSettings | None  # None: the drafting service's own


def _check_sampling(temperature, top_k, top_p, min_p, repetition_penalty) -> None:
    if temperature is not None and temperature < 0:
        raise ValueError("temperature must be >= 0")
    if top_k is not None and top_k < 0:
        raise ValueError("top_k must be >= 0")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError("top_p must be in (0, 1]")
    if min_p is not None and not 0 <= min_p <= 1:
        raise ValueError("min_p must be in [0, 1]")
    if repetition_penalty is not None and repetition_penalty <= 0:
        raise ValueError("repetition_penalty must be > 0")


def model_defaults(model: Any) -> dict[str, Any]:
    """The sampling fields ``generate()`` would use for ``model`` with no arguments."""
    hf = getattr(model, "generation_config", None)
    try:
        from transformers import GenerationConfig as HFGenerationConfig

        base = dict(HFGenerationConfig._get_default_generation_params())
    except (ImportError, AttributeError):
        base = {}
    out = {}
    for key, fallback in _HF_DEFAULTS.items():
        value = getattr(hf, key, None) if hf is not None else None
        out[key] = value if value is not None else base.get(key, fallback)
    out["max_new_tokens"] = getattr(hf, "max_new_tokens", None) if hf is not None else None
    stops = getattr(hf, "stop_strings", None) if hf is not None else None
    out["stop_strings"] = (stops,) if isinstance(stops, str) else tuple(stops or ())
    return out


def unsupported_settings(model: Any, do_sample: bool) -> list[str]:
    """Names of the model's generation_config fields whose processors sufdec does not apply."""
    hf = getattr(model, "generation_config", None)
    if hf is None:
        return []
    checks = dict(_UNSUPPORTED, **(_UNSUPPORTED_SAMPLING if do_sample else {}))
    return [f"{k}={getattr(hf, k)!r}" for k, bad in checks.items() if bad(getattr(hf, k, None))]


def resolve_generation(config: GenerationConfig, model: Any, tokenizer: Any = None) -> ResolvedGeneration:
    """Fix every None field of ``config`` the way ``model.generate()`` would."""
    d = model_defaults(model)
    if config.do_sample is not None:
        do_sample = config.do_sample
    elif config.temperature is not None:
        do_sample = config.temperature > 0
    else:
        do_sample = bool(d["do_sample"])
    pick = lambda key: getattr(config, key) if getattr(config, key) is not None else d[key]  # noqa: E731
    temperature = float(pick("temperature"))
    penalty = float(pick("repetition_penalty"))
    if do_sample and temperature == 0:
        do_sample = False  # a temperature of 0 is greedy decoding
    if do_sample:
        sampling = SamplingParams(temperature, int(pick("top_k") or 0), float(pick("top_p")), penalty, pick("min_p"))
        _check_sampling(temperature, sampling.top_k, sampling.top_p, sampling.min_p, penalty)
    else:
        sampling = SamplingParams(0.0, 0, 1.0, penalty, None)
    bad = unsupported_settings(model, do_sample)
    if bad:
        warnings.warn(
            f"the model's generation_config sets {', '.join(bad)}, which sufdec does not apply: "
            "outputs can differ from model.generate()",
            stacklevel=3,
        )
    max_new = config.max_new_tokens or d["max_new_tokens"] or DEFAULT_MAX_NEW_TOKENS
    eos = config.eos_token_ids if config.eos_token_ids is not None else eos_ids_of(model, tokenizer)
    return ResolvedGeneration(
        max_new_tokens=int(max_new),
        sampling=sampling,
        seed=config.seed,
        stop=config.stop or d["stop_strings"],
        eos=tuple(eos),
        draft=config.draft,
    )
