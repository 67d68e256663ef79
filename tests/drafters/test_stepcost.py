"""The measured cost of a verified token (``sufdec.drafters.stepcost``) and the two ways
draft control reads it: a batch engine's price per token, one request's live cost curve."""

from __future__ import annotations

import pytest

from sufdec.drafters.control import ControlState, StepOutcome
from sufdec.drafters.learning import BackgroundLearner
from sufdec.drafters.service import DraftService
from sufdec.drafters.settings import DraftSettings
from sufdec.drafters.sizing import CostModel
from sufdec.drafters.stepcost import StepCost
from sufdec.suffix.draft import Draft


def _steps(cost, shapes, seconds, out_per_step):
    """Feed ``cost`` steps of (requests, drafted) shapes taking ``seconds(r, d)`` each."""
    for r, d in shapes:
        cost.observe(r, d, seconds(r, d), out_per_step(r, d))


def test_step_cost_prices_a_drafted_token_at_what_the_engine_gives_up():
    a, c, b = 0.04, 0.003, 0.002  # seconds per step, per request, per drafted token
    step = lambda r, d: a + c * r + b * d  # noqa: E731
    cost = StepCost(prior=0.35)
    assert cost.token_cost == 0.35  # nothing measured yet
    # one request: drafts of 0..5 tokens, 2 tokens out per step
    _steps(cost, [(1, k % 6) for k in range(40)], step, lambda r, d: 2)
    assert cost.fit() == pytest.approx((a + c, 0.0, b))  # one request count: a and c are one
    assert 2 * b / step(1, 5) < cost.token_cost < 2 * b / step(1, 0)
    # 32 to 8 requests: requests and drafts vary apart; the same token costs more output
    busy = StepCost(prior=0.35)
    shapes = [(32 - k % 25, 3 * (k % 7)) for k in range(60)]
    _steps(busy, shapes, step, lambda r, d: r + d // 2)
    assert busy.fit() == pytest.approx((a, c, b))
    assert busy.token_cost > 4 * cost.token_cost
    assert len(busy.history) == busy.steps and busy.history[-1][:2] == shapes[-1]


def test_step_cost_waits_until_the_data_can_tell():
    cost = StepCost(prior=0.2)
    _steps(cost, [(4, 8)] * 40, lambda r, d: 0.1, lambda r, d: 8)  # always the same draft size
    assert cost.fit() is None and cost.token_cost == 0.2
    cost.observe(0, 3, 1.0, 1)  # no request, or no time: not a step
    cost.observe(1, 3, float("nan"), 1)
    assert cost.steps == 40
    cost.reset()
    assert cost.steps == 0 and not cost.history
    # a GPU far from its compute bound: the step time does not grow with drafted tokens
    gpu = StepCost(prior=0.2)
    _steps(gpu, [(1 + k % 3, k % 9) for k in range(30)], lambda r, d: 0.02, lambda r, d: 3)
    assert gpu.token_cost == pytest.approx(0.0, abs=1e-9)


def test_live_cost_curve_follows_the_machine():
    """One request at a time: the measured curve until the steps can tell; steps that say a
    drafted token costs more scale its excess up (its shape kept); a few slow steps do not
    set it alone; without varied drafts it drifts back to the measured one."""
    base = CostModel((1, 8, 32), (1.0, 1.5, 2.6))
    cost = StepCost()
    assert cost.cost_model(base) is base
    quiet = StepCost()
    _steps(quiet, [(1, k % 17) for k in range(60)], lambda r, d: 0.1 * base.cost(1 + d), lambda r, d: 1)
    assert quiet.cost_model(base).cost(9) == pytest.approx(base.cost(9), rel=0.1)  # the machine as measured
    _steps(cost, [(1, k % 9) for k in range(60)], lambda r, d: 0.1 + 0.05 * d, lambda r, d: 1)  # contended
    busy = cost.cost_model(base)
    assert busy.cost(9) > 2 * base.cost(9) and busy.cost(2) < busy.cost(9) < busy.cost(33)
    one_slow = StepCost()
    _steps(one_slow, [(1, 0)] * 30 + [(1, 2)], lambda r, d: 0.1 if d == 0 else 0.4, lambda r, d: 1)
    assert one_slow.cost_model(base).cost(3) < 1.5  # one slow step with 2 drafted tokens: not 4 forwards
    _steps(cost, [(1, 0)] * 2000, lambda r, d: 0.1, lambda r, d: 1)  # plain steps only
    assert cost.cost_model(base).cost(9) == pytest.approx(base.cost(9), rel=0.05)


def _chain(probs):
    return Draft(list(range(1, len(probs) + 1)), list(range(-1, len(probs) - 1)), list(probs))


def test_a_price_keeps_the_tokens_that_pay_for_themselves():
    controls = ControlState(CostModel.flat(), price=lambda: 0.5, calibrate=False)
    chain = _chain([0.9, 0.6, 0.4, 0.2])
    assert controls.for_request("cost").size(chain, 10).token_ids == [1, 2]
    assert controls.for_request("cost").size(chain, 1).token_ids == [1]
    controls.price = lambda: 0.0
    assert controls.for_request("cost").size(chain, 3).token_ids == [1, 2, 3]


def test_a_price_reads_calibrated_probabilities():
    """One stored occurrence drafts count ratios of ~0.67 per token; once exact repeats were
    seen to hold every time, the calibration lets the whole chain through."""
    service = DraftService(DraftSettings(sizing="cost"), price=0.3)
    chain = _chain([0.67**d for d in range(1, 7)])
    control = service.controls.for_request("cost")
    assert len(control.size(chain, 10)) == 3
    for _ in range(50):
        service.controls.calibration("suffix").record(chain, [1, 2, 3, 4, 5, 6])
    assert len(control.size(chain, 10)) == 6
    service.timed_step(4, 8, 0.1, 8)
    assert service.token_price() == 0.3


def test_measured_price_and_refusals():
    service = DraftService(price="measured", prior=0.25)
    assert service.token_price() == 0.25
    _steps(service.controls.steps, [(1, k % 6) for k in range(40)], lambda r, d: 0.04 + 0.002 * d, lambda r, d: 2)
    assert service.token_price() == pytest.approx(service.controls.steps.token_cost) != 0.25
    for bad in (2, "cheap", True):
        with pytest.raises(ValueError, match="price must be"):
            DraftService(price=bad)


def test_the_decode_loop_refits_its_curve_from_each_step():
    """A live service (the engine's measured curve) feeds every step's verification time
    to the fit once, whatever the source; a given curve stays as given."""
    live = DraftService(DraftSettings(sizing="cost"))
    live.use_cost(lambda: CostModel.flat())
    given = DraftService(DraftSettings(sizing="cost"), cost=CostModel.flat())
    for service in (live, given):
        request = service.start([1, 2, 3])
        for k in range(40):
            drafted = _chain([0.5] * (k % 7))
            request.feedback(StepOutcome(drafted, 0, [7], len(drafted), 0.0, 0.01 + 0.004 * (k % 7)))
    assert live.controls.steps.steps == 40 and given.controls.steps.steps == 0
    assert live.controls.cost_model().cost(5) > 1.5  # a flat measured curve, steps that say otherwise
    assert given.controls.cost_model() == CostModel.flat()


def test_background_learning_stores_in_order_and_survives_errors():
    got = []

    def learn(tokens):
        if tokens == [0]:
            raise RuntimeError("disk on fire")
        got.append(tokens)
        return len(got) if tokens != [9] else None

    service = DraftService(learn=learn, learn_in_background=True)
    for toks in ([1, 2], [0], [3], [9]):
        assert service.learn_output(toks) is None  # queued: no id yet
    learner = service.learner
    assert isinstance(learner, BackgroundLearner) and learner.flush(10)
    service.close()
    assert got == [[1, 2], [3], [9]]
    assert learner.learned == 2 and learner.duplicates == 1 and service.learner is None
