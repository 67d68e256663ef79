"""The hybrid drafter's choice each step: the suffix draft, an early-exit chain or nothing;
early exit refused while its steps measure slower than plain ones; its prefill deferred."""

from __future__ import annotations

import pytest

import sufdec.drafters.hybrid as hybrid_module
from sufdec.drafters.control import ControlState, StepOutcome
from sufdec.drafters.hybrid import HybridDrafter, sides
from sufdec.drafters.settings import DraftSettings
from sufdec.suffix.draft import Draft
from tests.drafters.test_control import CPU, chain

D = DraftSettings()  # the hybrid's default knobs


def hybrid_of(suffix, early, shared, settings):
    """A hybrid with its two sides' controls made as the registry makes them."""
    return HybridDrafter(suffix, early, sides(shared, settings), settings)


class FakeDrafter:
    """Drafts what it is told; records the calls."""

    def __init__(self, draft=None):
        self.next = draft or Draft()
        self.calls, self.seen, self.rule = [], [], None

    def begin(self, prompt_ids):
        self.seen = list(prompt_ids)

    def draft(self, max_nodes):
        self.calls.append(max_nodes)
        return self.next

    def observe(self, new_ids):
        self.seen += new_ids

    def end(self, output_ids, finished):
        self.ended = finished


def report(hybrid, draft, emitted, draft_s=0.0, forward_s=0.0):
    """The drafting service's one report of a step that verified the chain ``draft`` and
    emitted ``emitted`` (the accepted prefix, then the bonus token)."""
    accepted = 0
    while accepted < min(len(draft), len(emitted) - 1) and draft.token_ids[accepted] == emitted[accepted]:
        accepted += 1
    hybrid.feedback(StepOutcome(draft, accepted, list(emitted), len(draft), draft_s, forward_s))


class FakePaced(FakeDrafter):
    abilities = frozenset({"pace", "prefill"})

    def prefill(self):
        pass

    def pace(self, rule):
        self.rule = rule


def test_hybrid_takes_the_better_draft_or_none(monkeypatch):
    shared = ControlState(CPU, seed=3)
    suffix, early = FakeDrafter(chain([7, 8, 9], [0.95, 0.9, 0.85])), FakePaced(chain([1, 2], [0.9, 0.8]))
    settings = DraftSettings(spec="hybrid", hybrid_unmatched=0)  # early exit weighed from the first step
    hybrid = HybridDrafter(suffix, early, sides(shared, settings), settings)
    assert early.rule is not None  # the early side is paced
    hybrid.begin([5, 6])
    # a strong suffix draft: taken, no early-exit forward paid
    d = hybrid.draft(32)
    assert d.token_ids == [7, 8, 9] and early.calls == []
    report(hybrid, d, [7, 8, 9, 4])
    assert early.seen == [5, 6, 7, 8, 9, 4]  # both sides follow the context
    # no suffix match and early exit believed good and cheap: an early-exit chain
    suffix.next = Draft()
    shared.posterior("eesd").a = 80.0
    d = hybrid.draft(32)
    assert d.token_ids == [1, 2] and len(early.calls) == 1
    post_a = shared.posterior("eesd").a
    report(hybrid, d, [1, 3])  # one accepted, then rejected
    assert shared.posterior("eesd").a == pytest.approx(1 + 0.97 * (post_a - 1) + 1)
    # a weak suffix draft (one node, right half the time) loses to a strong early-exit chain
    suffix.next = chain([6], [0.5])
    d = hybrid.draft(32)
    assert d.token_ids == [1, 2] and len(early.calls) == 2
    report(hybrid, d, [1, 2, 4])
    # a suffix match appears: it takes over at the next step (early exit measured at 30%
    # of a forward per drafted token, the suffix draft at nothing)
    shared.forward_s.value, shared.draft_s_per_token["eesd"].value = 0.05, 0.015
    suffix.next = chain([3, 4, 5], [0.99, 0.98, 0.97])
    d = hybrid.draft(32)
    assert d.token_ids == [3, 4, 5] and len(early.calls) == 2
    report(hybrid, d, [3, 4, 5, 6])
    # neither pays (no suffix match, early exit believed useless): nothing is drafted
    suffix.next = Draft()
    shared.posterior("eesd").a, shared.posterior("eesd").b = 1.0, 500.0
    d = hybrid.draft(32)
    assert len(d) == 0 and len(early.calls) == 2
    report(hybrid, d, [9])
    assert hybrid.choices == {"suffix": 2, "eesd": 2, "none": 1}
    hybrid.end([1], True)
    assert suffix.ended and early.ended


def test_hybrid_without_an_exit_layer_is_the_suffix_drafter():
    suffix = FakeDrafter(chain([7, 8], [0.9, 0.8]))
    hybrid = hybrid_of(suffix, None, ControlState(CPU), DraftSettings(spec="hybrid"))
    hybrid.begin([1])
    assert hybrid.draft(32).token_ids == [7, 8]
    suffix.next = Draft()
    assert len(hybrid.draft(32)) == 0


class Clock:
    """Stands in for ``time`` in the hybrid module: seconds pass only when told."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        return self.now


class SlowEarly(FakePaced):
    """An early-exit drafter whose chains of one token are always right, each costing
    ``seconds`` of drafting; its prefill costs ``prefill_s`` (counted)."""

    def __init__(self, clock, seconds, prefill_s=0.002):
        super().__init__(chain([1], [0.9]))
        self.clock, self.seconds, self.prefill_s, self.prefills = clock, seconds, prefill_s, 0

    def prefill(self):
        self.prefills += 1
        self.clock.now += self.prefill_s

    def draft(self, max_nodes):
        self.clock.now += self.seconds
        return super().draft(max_nodes)


def run_steps(clock, hybrid, steps, forward_s=0.01):
    """A request of ``steps`` decode steps without suffix matches: the target accepts a
    drafted chain (chains of one token here)."""
    hybrid.begin([5, 6])
    for _ in range(steps):
        t0 = clock.now
        d = hybrid.draft(32)
        draft_s = clock.now - t0
        clock.now += forward_s  # the verification forward
        report(hybrid, d, [1, 2] if len(d) else [2], draft_s, forward_s)  # the chain accepted, then the bonus
    hybrid.end([], True)


def believed_good():
    """Draft controls whose posterior and drafting-cost view always favour chains."""
    shared = ControlState(CPU, seed=1)
    shared.draft_cost = lambda source: 0.0
    shared.posterior("eesd").a = 50.0
    shared.forward_s.add(0.01)  # a plain step: 0.01 s for one token
    return shared


@pytest.mark.parametrize("draft_s,expect_slow", [(0.05, True), (0.001, False)])
def test_early_exit_is_refused_while_its_steps_are_slower_than_plain(monkeypatch, draft_s, expect_slow):
    clock = Clock()
    monkeypatch.setattr(hybrid_module, "time", clock)
    shared = believed_good()
    early = SlowEarly(clock, draft_s)
    hybrid = hybrid_of(FakeDrafter(), early, shared, DraftSettings(spec="hybrid", sizing="beta-ts"))
    run_steps(clock, hybrid, 200)
    rate = shared.step_rate("eesd")
    assert early.prefills == 1  # once in the request, at its first chain
    if expect_slow:  # 2 tokens in 0.06 s against 1 in 0.01 s: the warm-up and the explorations
        assert rate.per_second == pytest.approx(2 / 0.06, rel=0.05)
        assert hybrid.choices["eesd"] <= D.hybrid_warmup + 200 // D.hybrid_explore + 1
        assert hybrid.choices["none"] >= 200 - D.hybrid_warmup - 200 // D.hybrid_explore - 1
        assert shared.step_rate("none").per_second == pytest.approx(100.0)
    else:  # 2 tokens in 0.011 s: every step drafts, once D.hybrid_unmatched had no suffix draft
        assert hybrid.choices["eesd"] == 200 - D.hybrid_unmatched + 1 and rate.vetoed == 0
        assert hybrid.choices["none"] == D.hybrid_unmatched - 1


def test_a_prefill_per_short_request_counts_against_early_exit(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(hybrid_module, "time", clock)
    shared = believed_good()
    early = SlowEarly(clock, 0.001, prefill_s=0.2)  # cheap chains, a dear prefill (a long prompt)
    hybrids = []
    for _ in range(40):  # requests of 5 steps: the prefill never pays
        hybrids.append(hybrid_of(FakeDrafter(), early, shared, DraftSettings(spec="hybrid")))
        run_steps(clock, hybrids[-1], 5)
    chains = sum(h.choices["eesd"] for h in hybrids)
    assert chains <= D.hybrid_warmup + 5 + 200 // D.hybrid_explore  # warm-up (finishing a request), explorations
    assert early.prefills <= 2 + 200 // D.hybrid_explore


def test_early_exit_waits_for_unmatched_steps_and_prefills_at_its_first_chain(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(hybrid_module, "time", clock)
    shared = ControlState(CPU, seed=1)
    early = SlowEarly(clock, 0.001)
    suffix = FakeDrafter(chain([7, 8, 9], [0.99, 0.98, 0.97]))
    hybrid = hybrid_of(suffix, early, shared, DraftSettings(spec="hybrid"))
    hybrid.begin([5, 6])
    shared.posterior("eesd").a = 80.0  # chains believed good
    for i in range(3 * (D.hybrid_unmatched - 1)):  # the suffix trees match 2 steps in 3
        suffix.next = chain([7, 8, 9], [0.99, 0.98, 0.97]) if i % 3 else Draft()
        report(hybrid, hybrid.draft(32), [7, 8, 9, 4] if i % 3 else [2])
    assert early.prefills == 0 and early.calls == []  # one unmatched step short
    hybrid.end([1], True)
    suffix.next = Draft()
    run_steps(clock, hybrid, D.hybrid_unmatched + 2)  # a new request without matches: one prefill
    assert early.prefills == 1 and len(early.calls) == 3
