"""Drafting settings: the one frozen config every layer embeds, and its named presets.

``DraftSettings`` says what to draft (tree, chain or nothing), how (merged or the
paper's rule, with their knobs) and how much of each draft to verify (cost sizing or a
fixed budget). The suffix drafter, the decode loop (``GenerationConfig.draft``), the
session (``SessionConfig.draft``), the replay benchmark and the CLI all carry one of these
instead of re-spelling its fields.

``spec`` names a drafting kind of the drafter registry (``sufdec.drafters.registry``:
``tree``, ``chain``, ``eesd``, ``hybrid``, ``off`` and any kind registered there), which
checks it; this module only carries the name. Nothing here imports torch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from sufdec._core import SpecConfig

MODES = ("merged", "paper")
SIZINGS = ("cost", "fixed", "beta-ts", "calibration-ts")


@dataclass(frozen=True)
class DraftSettings:
    """How drafts are grown and how much of them is verified.

    Budget of one draft = min(max_spec_tokens, floor(max_spec_factor * match_len +
    max_spec_offset)); nodes whose estimated probability is below ``min_token_prob`` are
    dropped.

    ``mode="merged"`` (default) drafts one tree from the global and the request tree at
    once: each contributes its ``max_sources`` deepest match lengths, a path's probability
    is the max over those sources of the product of ``c / (n + prior)`` along it, and the
    most probable paths are kept. ``mode="paper"`` is the published rule: each tree drafts
    from its best-scoring match length with count-ratio probabilities, and the
    higher-scoring tree's draft wins. ``spec="chain"`` keeps only the most probable path
    of whatever the mode drafts.

    ``sizing="cost"`` verifies the part of each draft worth its forward cost (measured at
    load, probabilities corrected by the acceptance observed so far); ``"fixed"`` always
    verifies up to ``max_spec_tokens`` nodes; ``"beta-ts"`` and ``"calibration-ts"`` are the
    Thompson-sampling length controllers (see ``sufdec.drafters.control``).
    ``max_depth`` is the request tree's depth.

    ``spec="eesd"``: ``exit_layer`` picks the trained exit layer (None: the most recently
    trained for the model); a chain grows while the product of its draft probabilities
    stays at or above ``exit_min_prob``, up to ``exit_max_len`` tokens; ``exit_branch`` > 0
    adds the runner-up as a sibling leaf where its probability is at least that share of the
    top's (0: chains).
    """

    spec: str = "tree"
    mode: str = "merged"
    max_spec_tokens: int = 32
    max_spec_factor: float = 1000.0
    max_spec_offset: float = 0.0
    min_token_prob: float = 0.0
    prior: float = 0.5
    max_sources: int = 3
    use_request_tree: bool = True
    max_depth: int = 64
    sizing: str = "cost"
    exit_layer: int | None = None
    exit_max_len: int = 6
    exit_min_prob: float = 0.3
    exit_branch: float = 0.0
    single_path: bool = False  # the drafter verifies chains: paper mode then drafts one path (set by the drafter)

    def __post_init__(self) -> None:
        if not isinstance(self.spec, str) or not self.spec:
            raise ValueError(f"spec must be a drafting kind's name, not {self.spec!r}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if self.sizing not in SIZINGS:
            raise ValueError(f"sizing must be one of {', '.join(SIZINGS)}, not {self.sizing!r}")
        if self.max_spec_tokens < 0:
            raise ValueError("max_spec_tokens must be >= 0")
        if self.max_depth < 1:
            raise ValueError("max_depth must be >= 1")
        if self.exit_max_len < 1 or not 0 <= self.exit_min_prob <= 1 or not 0 <= self.exit_branch <= 1:
            raise ValueError("need exit_max_len >= 1, 0 <= exit_min_prob <= 1 and 0 <= exit_branch <= 1")
        self.core  # noqa: B018 - the core validates the numeric knobs once, here

    @classmethod
    def preset(cls, name: str = "merged", **overrides: Any) -> "DraftSettings":
        """A named preset (see :data:`PRESETS`) with some fields replaced.

        Overrides whose value is None keep the preset's value, so CLI options that were
        not given can be passed through as they are.
        """
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}: use one of {', '.join(PRESETS)}")
        return dataclasses.replace(PRESETS[name], **{k: v for k, v in overrides.items() if v is not None})

    def replace(self, **changes: Any) -> "DraftSettings":
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
PRESETS: dict[str, DraftSettings] = {
    "merged": DraftSettings(),
    "paper": DraftSettings(mode="paper", max_spec_factor=4.0, min_token_prob=0.1),
}
