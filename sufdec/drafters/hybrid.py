"""The hybrid drafter (``--spec hybrid``): each step the suffix draft or an early-exit chain.

Each step it drafts from the suffix trees (microseconds), sizes that draft with the
calibrated cost rule and computes its expected tokens per unit of cost; the early-exit
side's Thompson-sampling control draws an acceptance rate and gives the best chain length
for it with its own expected rate (drafting cost included, measured online). The higher
rate wins; an early-exit chain is drafted only when it wins and pays at all, so where the
suffix trees match (repeated work) drafting costs nothing extra, and where neither pays the
step is plain decoding. A suffix match that appears while early exit drafts takes over at
the next step, since the comparison is made every step.

The posterior can stay optimistic where early exit does not pay (it learns from the chains
the draw chose, and the draw is noisy), so each source's steps are also timed whole
(drafting and verification, from the step's report: ``StepRate``), and once early exit has had ``WARMUP``
steps, it is weighed only while its steps earn at least as many tokens per second as
plain ones; while they do not, the step is what the suffix drafter alone would do, and one
step in ``EXPLORE`` considers early exit anyway, so that a change is noticed. The early-exit
drafter's prefill waits for its first chain in a request (none when it never drafts) and
counts in that step's time (a request that drafts one chain pays a whole prefill for it),
not in the per-token drafting cost the Thompson-sampling control weighs; and early exit is
not weighed in a request before ``UNMATCHED`` of its steps found no suffix draft, so
where the suffix trees cover most steps (text-to-SQL on a known schema: a few unmatched
steps a request, each a long prompt to prefill) no prefill is paid for a chain or two.

The hybrid sizes its drafts itself; the decode loop verifies them as they come (its own
control for a hybrid request only passes them through). It learns from the drafting
service's one report per step (``feedback``: what was verified, the accepted count, the
step's drafting and forward seconds), which it passes on to the control of the source it
chose; both sides learn every step: the suffix calibration labels every suffix draft
against what followed, verified or not, and the early-exit posterior is updated with the
acceptance of the chains it drafted. No torch here: the early-exit drafter is handed in.
"""

from __future__ import annotations

import time
from typing import Optional

from sufdec.drafters.base import Drafter, PacedDrafter, PrefillingDrafter
from sufdec.drafters.control import DraftControl, DraftControls, StepOutcome
from sufdec.suffix.draft import Draft
from sufdec.suffix.settings import DraftSettings

WARMUP = 8  # early-exit steps timed before their throughput can refuse a chain
EXPLORE = 32  # while refused, one step in this many weighs early exit anyway
UNMATCHED = 8  # steps without a suffix draft in a request before its first chain (and prefill)


class HybridDrafter:
    """Drafts from ``suffix`` or ``early`` (None: suffix only) per step, see the module doc.

    ``controls`` is the generator's shared learned state; the suffix side is sized by the
    ``cost`` policy, the early-exit side by ``settings.sizing`` when that is a
    Thompson-sampling policy, else by ``calibration-ts``.
    """

    def __init__(
        self, suffix: Drafter, early: Optional[Drafter], controls: DraftControls, settings: DraftSettings
    ) -> None:
        self.suffix, self.early = suffix, early
        self.suffix_ctl: DraftControl = controls.for_request("cost", "suffix")
        policy = settings.sizing if settings.sizing in ("beta-ts", "calibration-ts") else "calibration-ts"
        self.early_ctl: DraftControl = controls.for_request(policy, "eesd", settings.exit_max_len)
        if isinstance(early, PacedDrafter):
            early.pace(self.early_ctl.keep_drafting)
        self.shared = controls
        self.last: tuple[str, Draft, float] | None = None  # (source, draft, its drafting seconds) this step
        self.caught_up = False  # the early-exit drafter has had this request's prefill
        self.unmatched = 0  # steps of this request without a suffix draft
        self.choices = {"suffix": 0, "eesd": 0, "none": 0}

    def begin(self, prompt_ids: list[int]) -> None:
        self.suffix.begin(prompt_ids)
        if self.early is not None:
            self.early.begin(prompt_ids)
        self.last, self.caught_up = None, False
        self.unmatched = 0

    def draft(self, max_nodes: int) -> Draft:
        t0 = time.perf_counter()
        raw = self.suffix.draft(max_nodes)
        sized = self.suffix_ctl.size(raw, max_nodes) if len(raw) else raw
        suffix_s = time.perf_counter() - t0
        suffix_rate = self.suffix_ctl.expected_rate(sized) if len(sized) else 0.0
        self.unmatched += 0 if len(sized) else 1
        k, early_rate = self.early_ctl.plan(max_nodes) if self._early_considered() else (0, 0.0)
        if len(sized) and suffix_rate >= early_rate:
            self.last = ("suffix", sized, suffix_s)
        elif k > 0 and early_rate > 1.0:
            if not self.caught_up:  # the prefill: in this step's time, not in the drafting cost
                self._catch_up()
            t1 = time.perf_counter()
            chain = self.early_ctl.size(self.early.draft(k), k)  # type: ignore[union-attr]
            self.last = ("eesd", chain, time.perf_counter() - t1)
        elif len(sized):
            self.last = ("suffix", sized, suffix_s)
        else:
            self.last = ("none", Draft(), suffix_s)
        self.choices[self.last[0]] += 1
        return self.last[1]

    def _catch_up(self) -> None:
        if isinstance(self.early, PrefillingDrafter):
            self.early.catch_up()
        self.caught_up = True

    def _early_considered(self) -> bool:
        """Early exit is weighed this step: there is one, its prefill can be spread over enough
        steps (``UNMATCHED`` in this request had no suffix draft, or it was paid already), and
        its steps pay (``_early_pays``)."""
        if self.early is None or not (self.caught_up or self.unmatched >= UNMATCHED):
            return False
        return self._early_pays()

    def _early_pays(self) -> bool:
        """Whether early-exit steps measured at least plain decoding's tokens per second
        (yes before ``WARMUP`` of them, and at one step in ``EXPLORE`` refused)."""
        early = self.shared.step_rate("eesd")
        mine, plain = early.per_second, self._plain_rate()
        if early.n < WARMUP or mine is None or plain is None or mine >= plain:
            return True
        early.vetoed += 1
        return early.vetoed % EXPLORE == 0

    def _plain_rate(self) -> float | None:
        """Tokens per second of a step without a draft: measured where the hybrid drafted
        nothing, else one token per one-token verification forward."""
        none = self.shared.step_rate("none")
        if none.n >= 4:
            return none.per_second
        f = self.shared.forward_s.value
        return 1.0 / f if f else None

    def feedback(self, outcome: StepOutcome) -> None:
        """The step's report: its whole time to the chosen source's step rate, the verified
        draft and accepted count to that source's control (the other side sees the tokens)."""
        new_ids = list(outcome.emitted)
        source, draft, seconds = self.last if self.last is not None else ("none", Draft(), 0.0)
        if self.last is not None:
            self.shared.step_rate(source).add(len(new_ids), outcome.draft_s + outcome.forward_s)
        for side, ctl in (("suffix", self.suffix_ctl), ("eesd", self.early_ctl)):
            mine = source == side
            ctl.feedback(
                StepOutcome(
                    outcome.verified if mine else Draft(),
                    outcome.accepted if mine else 0,
                    new_ids,
                    drafted=len(draft) if mine else 0,
                    draft_s=seconds if mine else 0.0,
                )
            )
        self.last = None
        self.observe(new_ids)

    def observe(self, new_ids: list[int]) -> None:
        """The context grows (both sides follow it)."""
        self.suffix.observe(new_ids)
        if self.early is not None:
            self.early.observe(new_ids)

    def use_tree(self, tree: object) -> None:
        retarget = getattr(self.suffix, "use_tree", None)
        if retarget is not None:
            retarget(tree)

    def end(self, output_ids: list[int], finished: bool) -> None:
        self.suffix_ctl.end()
        self.early_ctl.end()
        self.suffix.end(output_ids, finished)
        if self.early is not None:
            self.early.end(output_ids, finished)
