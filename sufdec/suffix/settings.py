"""The suffix trees' drafting settings and their named presets.

``SuffixSettings`` says how a draft is grown from the suffix trees (merged or the paper's
rule, with their knobs) and how many nodes a draft may have. The drafting kinds, the draft
controls and the early-exit knobs are the drafters' (``sufdec.drafters.settings``:
``DraftSettings`` extends this class with them). Nothing here imports torch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from sufdec._core import SpecConfig
from sufdec.knobs import check, knob

MODES = ("merged", "paper")


@dataclass(frozen=True)
class SuffixSettings:
    """How drafts are grown from the suffix trees.

    Budget of one draft = min(max_spec_tokens, floor(max_spec_factor * match_len +
    max_spec_offset)); nodes whose estimated probability is below ``min_token_prob`` are
    dropped.

    ``mode="merged"`` (default) drafts one tree from the global and the request tree at
    once: each contributes its ``max_sources`` deepest match lengths, a path's probability
    is the max over those sources of the product of ``c / (n + prior)`` along it, and the
    most probable paths are kept. ``mode="paper"`` is the published rule: each tree drafts
    from its best-scoring match length with count-ratio probabilities, and the
    higher-scoring tree's draft wins. ``max_depth`` is the request tree's depth.
    """

    mode: str = knob(
        "merged",
        "merged: one tree from both trees and several match lengths; paper: the published algorithm "
        "(factor 4, min probability 0.1)",
        choices=MODES,
    )
    max_spec_tokens: int = knob(32, "Most draft nodes verified per step", low=0, high=2**31 - 1)
    max_spec_factor: float = knob(1000.0, "Draft at most factor x match length nodes", low=0.0)
    max_spec_offset: float = 0.0
    min_token_prob: float = knob(0.0, "Drop draft nodes whose estimated probability is lower", low=0.0, high=1.0)
    prior: float = 0.5
    max_sources: int = 3
    use_request_tree: bool = True
    max_depth: int = knob(64, "The request tree's depth", low=1)
    single_path: bool = False  # the drafter verifies chains: paper mode then drafts one path (set by the drafter)

    def __post_init__(self) -> None:
        check(self)
        self.core  # noqa: B018 - the core validates the numeric knobs once, here

    def replace(self, **changes: Any) -> Any:
        return dataclasses.replace(self, **changes)

    @property
    def use_tree(self) -> bool:
        """Whether the core grows trees (False: the paper's single-path drafting, for a
        drafter that verifies chains in paper mode)."""
        return not self.single_path or self.mode == "merged"

    def core_kwargs(self, max_spec_tokens: int | None = None) -> dict:
        """The single-tree keywords of the core's ``speculate*`` calls."""
        return {
            "max_spec_tokens": self.max_spec_tokens if max_spec_tokens is None else max_spec_tokens,
            "max_spec_factor": self.max_spec_factor,
            "max_spec_offset": self.max_spec_offset,
            "min_token_prob": self.min_token_prob,
            "use_tree": self.use_tree,
        }

    def core_config(self, max_spec_tokens: int | None = None) -> SpecConfig:
        """The core's validated form, with an optional smaller node budget."""
        return SpecConfig(
            **self.core_kwargs(max_spec_tokens), mode=self.mode, prior=self.prior, max_sources=self.max_sources
        )

    @cached_property
    def core(self) -> SpecConfig:
        """``core_config()`` built once (raises ValueError on bad values)."""
        return self.core_config()


# merged: one draft merged over both trees and several match lengths, budget not tied to
# the match length; the default. Model-free replay, frozen protocol, budget 32 / 128
# (tokens per step): Spider 2.80 / 2.92, HumanEval 2.19 / 2.39, ShareGPT (20k replies)
# 2.21 / 2.47, against the paper rule's 2.30 / 1.75 / 1.77 at either budget.
# paper: the published SuffixDecoding settings (factor 4, min probability 0.1).
PRESETS: dict[str, dict[str, Any]] = {
    "merged": {},
    "paper": {"mode": "paper", "max_spec_factor": 4.0, "min_token_prob": 0.1},
}


def preset_default(name: str) -> str:
    """A suffix setting's default in words, per preset where they differ ("1000 merged, 4 paper")."""
    base = dataclasses.fields(SuffixSettings)
    default = next(f.default for f in base if f.name == name)
    values = {p: over.get(name, default) for p, over in PRESETS.items()}
    if len(set(values.values())) == 1:
        return f"{default:g}" if isinstance(default, float) else str(default)
    return ", ".join(f"{v:g} {p}" if isinstance(v, float) else f"{v} {p}" for p, v in values.items())
