"""Draft control: the policies' decisions and what they learn from each step's feedback
(the hybrid drafter's choices: test_hybrid_choice.py)."""

from __future__ import annotations

import pytest

from sufdec.drafters.control import (
    BetaPosterior,
    BetaTSControl,
    CalibrationTSControl,
    ControlState,
    CostControl,
    DraftControl,
    StepOutcome,
    best_length,
    chain_rate,
)
from sufdec.drafters.settings import DraftSettings
from sufdec.drafters.sizing import CostModel
from sufdec.suffix.draft import Draft

CPU = CostModel((1, 2, 4, 8, 16, 32), (1.0, 1.07, 1.5, 1.86, 2.04, 2.6))


def chain(tokens, probs=None):
    probs = probs or [0.9 ** (i + 1) for i in range(len(tokens))]
    return Draft(list(tokens), list(range(-1, len(tokens) - 1)), probs, float(sum(probs)), 3)


def test_chain_rate_and_best_length():
    # theta 0: nothing pays; theta 1 and a flat cost: the longest chain
    assert best_length(0.0, 8, CPU, 0.0)[0] == 0
    assert best_length(1.0, 8, CostModel.flat(), 0.0)[0] == 8
    # expected tokens (1 + .5 + .25) over cost(3) + 2 draft costs
    assert chain_rate(0.5, 2, CPU, 0.1) == pytest.approx(1.75 / (CPU.cost(3) + 0.2))
    # a good acceptance pays when drafting is cheap, not when a drafted token costs 60% of a forward
    assert best_length(0.6, 6, CPU, 0.0)[0] >= 1
    assert best_length(0.6, 6, CPU, 0.6)[0] == 0


def test_beta_posterior_discounts_old_evidence():
    fast, slow = BetaPosterior(discount=0.9), BetaPosterior(discount=1.0)
    for p in (fast, slow):
        for _ in range(200):
            p.update(1, 0)
        for _ in range(30):
            p.update(0, 1)
    assert fast.mean < 0.2 < 0.8 < slow.mean  # the discounted one follows the drift
    assert BetaPosterior().mean == 0.5


def test_beta_ts_limit_feedback_and_not_drafting():
    shared = ControlState(CPU, seed=0)
    ctl = shared.for_request("beta-ts", "eesd", max_len=6)
    assert isinstance(ctl, BetaTSControl) and ctl.keep_drafting(5, 0.01)  # length decided up front
    post = shared.posterior("eesd")
    a, b = post.a, post.b
    ctl.feedback(StepOutcome(chain([1, 2, 3]), 2, [1, 2, 9]))
    assert (post.a, post.b) == pytest.approx((1 + 0.97 * (a - 1) + 2, 1 + 0.97 * (b - 1) + 1))
    ctl.feedback(StepOutcome(chain([1, 2]), 2, [1, 2, 5]))  # whole chain accepted: no failure
    assert post.b == pytest.approx(1 + 0.97 * (b - 1 + 1))
    # always accepted and free to draft: it asks for long chains
    for _ in range(100):
        post.update(1, 0)
    assert sum(ctl.limit(32) for _ in range(20)) / 20 >= 4
    # drafting measured at 60% of a forward per token: it stops drafting
    shared.forward_s.add(0.05)
    shared.draft_s_per_token["eesd"] = type(shared.forward_s)()
    shared.draft_s_per_token["eesd"].add(0.03)
    post.a, post.b = 2.0, 3.0
    assert shared.draft_cost("eesd") == pytest.approx(0.6)
    assert sum(ctl.limit(32) == 0 for _ in range(200)) > 150


def test_feedback_measures_times():
    shared = ControlState(CostModel.flat())
    ctl = shared.for_request("fixed", "eesd")
    ctl.feedback(StepOutcome(chain([1, 2]), 1, [1, 7], drafted=2, draft_s=0.02, forward_s=0.05))
    assert shared.draft_cost("eesd") == pytest.approx(0.2)  # 10 ms a token / 50 ms a forward
    assert shared.draft_cost("suffix") == 0.0


def test_cost_control_labels_every_drafted_node_once_known():
    shared = ControlState(CostModel.flat())
    ctl = shared.for_request("cost")
    assert isinstance(ctl, CostControl)
    d = chain([4, 5, 6], [0.99, 0.98, 0.97])
    sized = ctl.size(d, 32, None)
    assert len(sized) == 3
    ctl.feedback(StepOutcome(sized, 1, [4, 8]))  # continuation known to depth 2 only
    assert ctl.pending  # depth 3 still unknown: kept
    ctl.feedback(StepOutcome(Draft(), 0, [1]))
    assert not ctl.pending
    table = shared.calibration("suffix").table()
    assert sum(row["seen"] for row in table) == 2  # depth 1 right, depth 2 wrong, depth 3 unlabelled
    ctl2 = shared.for_request("cost")
    ctl2.size(chain([1]), 32, None)
    ctl2.end()  # the end labels what is left
    assert not ctl2.pending


def test_calibration_ts_stops_on_low_calibrated_acceptance():
    shared = ControlState(CPU, seed=1)
    ctl = shared.for_request("calibration-ts", "eesd", max_len=6)
    assert isinstance(ctl, CalibrationTSControl)
    cal = shared.calibration("eesd")
    # the exit head's confident tokens are always right, its unsure ones never
    for _ in range(50):
        cal.record(chain([1, 2, 3], [0.99, 0.99 * 0.99, 0.99 * 0.99 * 0.3]), [1, 2, 4])
    shared.posterior("eesd").a = 50.0  # a draw near 1: drafting starts
    assert ctl.limit(32) == 6
    assert ctl.keep_drafting(1, 0.99) and ctl.keep_drafting(2, 0.99)
    assert not ctl.keep_drafting(3, 0.3)
    # the break-even moves with the drafting cost: right 60% of the time does not pay
    # when each drafted token costs 80% of a forward
    for _ in range(50):
        cal.record(chain([5], [0.6]), [5] if _ % 5 < 3 else [6])
    assert ctl.limit(32) == 6 and ctl.keep_drafting(1, 0.6)
    shared.forward_s.add(0.05)
    shared.draft_s_per_token["eesd"] = type(shared.forward_s)()
    shared.draft_s_per_token["eesd"].add(0.04)
    ctl.limit(32)
    assert not ctl.keep_drafting(1, 0.6)


def test_unknown_policy_and_settings():
    with pytest.raises(ValueError, match="draft control"):
        ControlState().for_request("bogus")
    assert DraftSettings(spec="hybrid", sizing="beta-ts").sizing == "beta-ts"
    with pytest.raises(ValueError, match="sizing"):
        DraftSettings(sizing="bogus")
    assert type(ControlState().for_request("fixed")) is DraftControl
