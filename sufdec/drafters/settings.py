"""Drafting settings: the one frozen config every layer above the suffix trees embeds.

``DraftSettings`` is the suffix trees' ``SuffixSettings`` plus what the drafters own: which
drafting kind (``spec``, a name of the drafter registry, ``sufdec.drafters.registry``),
how much of each draft to verify (``sizing``, the draft control's policy,
``sufdec.drafters.control``), the early-exit drafter's knobs and the hybrid's. The decode
loop (``GenerationConfig.draft``), the session, the benchmarks and the CLI carry one of
these; the CLI builds its options from these fields (``sufdec.knobs``). No torch here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sufdec.knobs import knob
from sufdec.suffix.settings import PRESETS, SuffixSettings

SIZINGS = ("cost", "fixed", "beta-ts", "calibration-ts")


@dataclass(frozen=True)
class DraftSettings(SuffixSettings):
    """What to draft and how much of it to verify.

    ``spec`` names the drafting kind (``tree``, ``chain``, ``eesd``, ``hybrid``, ``off`` and
    any kind registered), which the registry checks. ``sizing="cost"`` verifies the part of
    each draft worth its forward cost; ``"fixed"`` always verifies up to
    ``max_spec_tokens`` nodes; ``"beta-ts"`` and ``"calibration-ts"`` are the
    Thompson-sampling length controllers.

    Early exit (``spec="eesd"``, the hybrid's early-exit side): ``exit_layer`` picks the
    trained exit layer (None: the most recently trained for the model); a chain grows while
    the product of its draft probabilities stays at or above ``exit_min_prob``, up to
    ``exit_max_len`` tokens; ``exit_branch`` > 0 adds the runner-up as a sibling leaf where
    its probability is at least that share of the top's (0: chains).

    The hybrid (``spec="hybrid"``, ``sufdec.drafters.hybrid``): ``hybrid_warmup`` early-exit
    steps are timed before their throughput can refuse a chain; while refused, one step in
    ``hybrid_explore`` weighs early exit anyway; early exit is not weighed in a request
    before ``hybrid_unmatched`` of its steps found no suffix draft.
    """

    spec: str = "tree"
    sizing: str = knob(
        "cost",
        "How much to draft and verify each step. cost: the part of each draft worth its forward cost (the "
        "cost kept current from the steps' own times, the draft's probabilities corrected by the acceptance "
        "observed so far); fixed: always up to --max-spec-tokens; beta-ts: Thompson sampling on the "
        "acceptance rate picks the draft length (drafting cost included; 0 = do not draft); calibration-ts: "
        "the same, stopping each early-exit chain at the first token whose calibrated confidence does not "
        "pay. hybrid: the early-exit side uses beta-ts or calibration-ts (the default), the suffix side cost",
        choices=SIZINGS,
    )
    exit_layer: int | None = knob(
        None, "The exit layer after layer N", low=1, high=2**31 - 1, shown="the newest trained"
    )
    exit_max_len: int = knob(6, "Longest early-exit chain", low=1)
    exit_min_prob: float = knob(0.3, "Stop a chain when its probability falls below this", low=0.0, high=1.0)
    exit_branch: float = knob(
        0.0,
        "Also verify the runner-up token where its probability is at least this share of the top token's",
        low=0.0,
        high=1.0,
        shown="0: chains",
    )
    hybrid_warmup: int = knob(8, "Early-exit steps timed before their throughput can refuse a chain", low=0)
    hybrid_explore: int = knob(32, "While early exit is refused, one step in this many weighs it anyway", low=1)
    hybrid_unmatched: int = knob(8, "Steps without a suffix draft in a request before its first chain", low=0)

    def __post_init__(self) -> None:
        if not isinstance(self.spec, str) or not self.spec:
            raise ValueError(f"spec must be a drafting kind's name, not {self.spec!r}")
        super().__post_init__()

    @classmethod
    def preset(cls, name: str = "merged", **overrides: Any) -> "DraftSettings":
        """A named suffix preset (see ``sufdec.suffix.settings.PRESETS``) with some fields
        replaced. Overrides whose value is None keep the preset's value, so CLI options
        that were not given can be passed through as they are."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}: use one of {', '.join(PRESETS)}")
        given = {k: v for k, v in overrides.items() if v is not None}
        return cls(**{**PRESETS[name], **given})


__all__ = ["DraftSettings", "SIZINGS"]
