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
(drafting and verification, from the step's report: ``StepRate``), and once early exit has
had ``hybrid_warmup`` steps, it is weighed only while its steps earn at least as many tokens
per second as plain ones; while they do not, the step is what the suffix drafter alone
would do, and one step in ``hybrid_explore`` considers early exit anyway, so that a change is noticed. The early-exit
drafter's prefill waits for its first chain in a request (none when it never drafts) and
counts in that step's time (a request that drafts one chain pays a whole prefill for it),
not in the per-token drafting cost the Thompson-sampling control weighs; and early exit is
not weighed in a request before ``hybrid_unmatched`` of its steps found no suffix draft, so
where the suffix trees cover most steps (text-to-SQL on a known schema: a few unmatched
steps a request, each a long prompt to prefill) no prefill is paid for a chain or two.

The hybrid sizes its drafts itself with the two draft controls it is given, one per side
(the registry makes them: ``sides``); the decode loop verifies its drafts as they come (its
own control for a hybrid request only passes them through). It learns from the drafting
service's one report per step (``feedback``: what was verified, the accepted count, the
step's drafting and forward seconds), which it passes on to the control of the source it
chose; both sides learn every step: the suffix calibration labels every suffix draft
against what followed, verified or not, and the early-exit posterior is updated with the
acceptance of the chains it drafted. No torch here: the early-exit drafter is handed in.
"""

from __future__ import annotations

import time
from typing import Optional

from sufdec.drafters.base import FEEDBACK, PACE, PREFILL, RETARGET, Drafter, abilities
from sufdec.drafters.control import ControlState, DraftControl, StepOutcome
from sufdec.drafters.settings import DraftSettings
from sufdec.suffix.draft import Draft

TS_POLICIES = ("beta-ts", "calibration-ts")


def sides(controls: ControlState, settings: DraftSettings) -> tuple[DraftControl, DraftControl]:
    """The hybrid's two draft controls for one request: the suffix side sized by the ``cost``
    policy, the early-exit side by ``settings.sizing`` when that is a Thompson-sampling
    policy, else by ``calibration-ts``."""
    policy = settings.sizing if settings.sizing in TS_POLICIES else "calibration-ts"
    return controls.for_request("cost", "suffix"), controls.for_request(policy, "eesd", settings.exit_max_len)


class HybridDrafter:
    """Drafts from ``suffix`` or ``early`` (None: suffix only) per step, see the module doc.

    ``controls``: the suffix side's and the early-exit side's draft controls for this
    request (``sides``); the step rates it compares live in their shared state.
    """

    abilities = frozenset({FEEDBACK, RETARGET})

    def __init__(
        self,
        suffix: Drafter,
        early: Optional[Drafter],
        controls: tuple[DraftControl, DraftControl],
        settings: DraftSettings,
    ) -> None:
        self.suffix, self.early = suffix, early
        self.suffix_ctl, self.early_ctl = controls
        self.settings = settings
        if early is not None and PACE in abilities(early):
            early.pace(self.early_ctl.keep_drafting)  # type: ignore[attr-defined]
        self.shared = self.early_ctl.shared
        self.last: tuple[str, Draft, float] | None = None  # (source, draft, its drafting seconds) this step
        self.prefilled = False  # the early-exit drafter has had this request's prefill
        self.unmatched = 0  # steps of this request without a suffix draft
        self.choices = {"suffix": 0, "eesd": 0, "none": 0}

    def begin(self, prompt_ids: list[int]) -> None:
        self.suffix.begin(prompt_ids)
        if self.early is not None:
            self.early.begin(prompt_ids)
        self.last, self.prefilled = None, False
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
            if not self.prefilled:  # the prefill: in this step's time, not in the drafting cost
                self._prefill()
            t1 = time.perf_counter()
            chain = self.early_ctl.size(self.early.draft(k), k)  # type: ignore[union-attr]
            self.last = ("eesd", chain, time.perf_counter() - t1)
        elif len(sized):
            self.last = ("suffix", sized, suffix_s)
        else:
            self.last = ("none", Draft(), suffix_s)
        self.choices[self.last[0]] += 1
        return self.last[1]

    def _prefill(self) -> None:
        if PREFILL in abilities(self.early):
            self.early.prefill()  # type: ignore[union-attr]
        self.prefilled = True

    def _early_considered(self) -> bool:
        """Early exit is weighed this step: there is one, its prefill can be spread over enough
        steps (``hybrid_unmatched`` in this request had no suffix draft, or it was paid already), and
        its steps pay (``_early_pays``)."""
        if self.early is None or not (self.prefilled or self.unmatched >= self.settings.hybrid_unmatched):
            return False
        return self._early_pays()

    def _early_pays(self) -> bool:
        """Whether early-exit steps measured at least plain decoding's tokens per second
        (yes before ``hybrid_warmup`` of them, and at one step in ``hybrid_explore`` refused)."""
        early = self.shared.step_rate("eesd")
        mine, plain = early.per_second, self._plain_rate()
        if early.n < self.settings.hybrid_warmup or mine is None or plain is None or mine >= plain:
            return True
        early.vetoed += 1
        return early.vetoed % self.settings.hybrid_explore == 0

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
        if RETARGET in abilities(self.suffix):
            self.suffix.use_tree(tree)  # type: ignore[attr-defined]

    def end(self, output_ids: list[int], finished: bool) -> None:
        self.suffix_ctl.end()
        self.early_ctl.end()
        self.suffix.end(output_ids, finished)
        if self.early is not None:
            self.early.end(output_ids, finished)
