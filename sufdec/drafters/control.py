"""Draft control: how much to draft and how much of a draft to verify, step by step.

One ``DraftControl`` per request, made by ``ControlState.for_request``. The drafting
service's request (``sufdec.drafters.service.DraftRequest``) talks to it at three points of
every step and nowhere else (the hybrid drafter, given the same step report, runs one per
source it chooses between):

    k = control.limit(max_nodes)             # before drafting: nodes to ask for (0: draft nothing)
    draft = control.size(raw, k, max_depth)  # after drafting: the part worth verifying
    control.feedback(StepOutcome(...))       # after verification: what happened, once per step
    ...
    control.end()                            # the request is over

A drafter that pays for every token it drafts (a model forward each, ``PacedDrafter``)
also asks ``control.keep_drafting(depth, q)`` before each further token. A chooser between
sources (the hybrid) asks each source's control ``plan(max_nodes)``: the limit with the
tokens per unit of cost it expects.

Policies (``DraftSettings.sizing``):
- ``fixed``: verify up to the budget, learn nothing.
- ``cost``: verify the top-m nodes maximising expected tokens per unit of forward cost,
  the drafter's probabilities read through an ``AcceptanceCalibration`` learned from
  every drafted node's outcome.
- ``beta-ts``: Thompson sampling on a Beta posterior of "a drafted token is accepted":
  each step draws theta and asks for the draft length maximising expected tokens per unit
  of cost, drafting cost included (``k = 0``: do not draft); updated with what was
  accepted, old evidence discounted so it follows drift within and across requests.
- ``calibration-ts``: the same draw, combined token by token with the drafter's own
  confidence through the calibration (the draw stands in where the calibration has seen
  nothing): drafting stops when the next token's calibrated acceptance no longer pays
  for its verification and drafting cost.

What outlives a request (the cost curve, the calibrations, the posteriors, the measured
drafting cost) lives in ``ControlState``, one per drafting service. The cost curve stays
current: with ``live=True`` (the decode loop's measured curve) every step's verification
time refits it (``sufdec.drafters.stepcost``), so a machine that became busy makes drafts
smaller; an engine whose steps serve many requests sets a ``price`` instead (the least
calibrated probability a drafted token must have, what verifying it costs in tokens of
output), and ``cost`` sizing keeps the nodes at or above it. No torch here.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable

from sufdec.drafters.settings import SIZINGS as POLICIES
from sufdec.drafters.sizing import AcceptanceCalibration, CostModel, size_draft, subtree, top_nodes
from sufdec.drafters.stepcost import StepCost
from sufdec.suffix.draft import Draft


@dataclass
class StepOutcome:
    """What one step did with its draft (the feedback call's one argument)."""

    verified: Draft  # the nodes that went into the verification forward
    accepted: int  # how many of them were accepted (the bonus token is not one)
    emitted: list[int]  # tokens the step appended to the request
    drafted: int = 0  # nodes the drafter produced (before sizing)
    draft_s: float = 0.0  # seconds spent drafting
    forward_s: float = 0.0  # seconds of the verification forward


DISCOUNT = 0.97  # old evidence's weight per update: memory of about 33 updates


class BetaPosterior:
    """Beta(a, b) on "a drafted token is accepted", with discounting: before each update
    the evidence beyond the prior is multiplied by ``discount`` (memory ~ 1 / (1 - discount)
    updates)."""

    def __init__(self, a: float = 1.0, b: float = 1.0, discount: float = DISCOUNT) -> None:
        self.prior = (a, b)
        self.a, self.b, self.discount = a, b, discount

    def update(self, successes: float, failures: float) -> None:
        pa, pb = self.prior
        self.a = pa + self.discount * (self.a - pa) + successes
        self.b = pb + self.discount * (self.b - pb) + failures

    def sample(self, rng: random.Random) -> float:
        return rng.betavariate(self.a, self.b)

    @property
    def mean(self) -> float:
        return self.a / (self.a + self.b)


class Ema:
    """An exponential moving average (None until the first value)."""

    def __init__(self, weight: float = 0.1) -> None:
        self.weight, self.value = weight, None

    def add(self, x: float) -> None:
        self.value = x if self.value is None else self.value + self.weight * (x - self.value)


class StepRate:
    """Tokens and wall seconds of the steps that drafted from one source (exponential moving
    averages; ``n`` steps seen): what a step from that source really earned, drafting and
    verification together, and ``vetoed``: how often a draft from it was refused for that."""

    def __init__(self, weight: float = 0.1) -> None:
        self.tokens, self.seconds = Ema(weight), Ema(weight)
        self.n = self.vetoed = 0

    def add(self, tokens: int, seconds: float) -> None:
        self.tokens.add(float(tokens))
        self.seconds.add(seconds)
        self.n += 1

    @property
    def per_second(self) -> float | None:
        t, s = self.tokens.value, self.seconds.value
        return t / s if t is not None and s else None


def chain_rate(theta: float, k: int, cost: CostModel, draft_cost: float) -> float:
    """Expected tokens per unit of cost of a k-token chain whose tokens are each accepted
    with probability ``theta`` given their parent: (1 + theta + ... + theta^k) over the
    verification cost of 1 + k tokens plus k drafting costs."""
    expected = sum(theta**i for i in range(k + 1))
    return expected / (cost.cost(1 + k) + k * draft_cost)


def best_length(theta: float, max_len: int, cost: CostModel, draft_cost: float) -> tuple[int, float]:
    """The chain length in 0..max_len with the best ``chain_rate`` and that rate."""
    best_k, best = 0, 1.0
    for k in range(1, max_len + 1):
        rate = chain_rate(theta, k, cost, draft_cost)
        if rate > best * (1.0 + 1e-9):
            best_k, best = k, rate
    return best_k, best


class ControlState:
    """The learned state draft control shares across requests, per drafting source
    ("suffix", "eesd"): acceptance calibrations, Beta posteriors, drafting cost (seconds
    per drafted token relative to a one-token verification forward, measured online).

    ``cost``: the verification cost curve, or a callable measuring it on first use;
    ``live``: refit it from every step's verification time (``steps``); ``price``: the
    engine's price of one verified token in tokens of output (its steps serve many
    requests), read at every sizing; None: the curve's tokens-per-cost rule.
    """

    def __init__(
        self,
        cost: CostModel | Callable[[], CostModel] | None = None,
        *,
        discount: float = DISCOUNT,
        seed: int | None = None,
        calibrate: bool = True,
        live: bool = False,
        price: Callable[[], float] | None = None,
    ) -> None:
        self._cost = cost if cost is not None else CostModel.flat()
        self.discount, self.calibrate = discount, calibrate
        self.live, self.price = live, price
        self.steps = StepCost()  # verification times against drafted tokens (live curve)
        self.calibrations: dict[str, AcceptanceCalibration] = {}
        self.posteriors: dict[str, BetaPosterior] = {}
        self.draft_s_per_token: dict[str, Ema] = {}
        self.forward_s = Ema()  # seconds of a one-token-equivalent verification forward
        self.step_rates: dict[str, StepRate] = {}  # per source a hybrid chose ("none": no draft)
        self.rng = random.Random(seed)

    @classmethod
    def flat(cls) -> "ControlState":
        return cls(CostModel.flat())

    def with_cost(self, cost: CostModel | Callable[[], CostModel], live: bool = False) -> None:
        """Use another cost curve (or its measurement on first use) from now on; ``live``:
        refit it from the steps' verification times once they can tell."""
        self._cost, self.live = cost, live

    def measured_cost(self) -> CostModel:
        """The curve given or measured at load."""
        if not isinstance(self._cost, CostModel):
            self._cost = self._cost()
        return self._cost

    def cost_model(self) -> CostModel:
        """The cost curve in use: the live fit once it can tell (``live``), else the measured one."""
        base = self.measured_cost()
        return self.steps.cost_model(base) if self.live else base

    def calibration(self, source: str) -> AcceptanceCalibration | None:
        return self.calibrations.setdefault(source, AcceptanceCalibration()) if self.calibrate else None

    def posterior(self, source: str) -> BetaPosterior:
        return self.posteriors.setdefault(source, BetaPosterior(discount=self.discount))

    def step_rate(self, source: str) -> StepRate:
        return self.step_rates.setdefault(source, StepRate())

    def draft_cost(self, source: str) -> float:
        """Drafting one token, in one-token verification forwards (0 until measured)."""
        d, f = self.draft_s_per_token.get(source), self.forward_s.value
        if d is None or d.value is None or not f:
            return 0.0
        return d.value / f

    def observe_times(self, source: str, out: StepOutcome) -> None:
        if out.forward_s > 0:
            if self.live:
                self.steps.observe(1, len(out.verified), out.forward_s, len(out.emitted))
            self.forward_s.add(out.forward_s / self.cost_model().cost(1 + len(out.verified)))
        if out.drafted > 0 and out.draft_s > 0:
            self.draft_s_per_token.setdefault(source, Ema()).add(out.draft_s / out.drafted)

    def for_request(self, policy: str, source: str = "suffix", max_len: int | None = None) -> "DraftControl":
        """A fresh control for one request drafting from ``source`` under ``policy``;
        ``max_len`` caps the length the TS policies consider (a paced drafter's longest chain)."""
        if policy == "fixed":
            return DraftControl(self, source)
        if policy == "cost":
            return CostControl(self, source)
        if policy == "beta-ts":
            return BetaTSControl(self, source, max_len)
        if policy == "calibration-ts":
            return CalibrationTSControl(self, source, max_len)
        raise ValueError(f"draft control must be one of {', '.join(POLICIES)}, not {policy!r}")


@dataclass
class DraftControl:
    """The ``fixed`` policy, and the base of the others: verify up to the budget."""

    shared: ControlState
    source: str = "suffix"
    context: list[int] = field(default_factory=list)  # tokens emitted so far
    pending: list[tuple[int, Draft, int]] = field(default_factory=list)  # (len(context) then, draft, depth)

    keep_drafting: Callable[[int, float], bool] | None = None  # None: the drafter's own rule

    def limit(self, max_nodes: int) -> int:
        return self.plan(max_nodes)[0]

    def plan(self, max_nodes: int) -> tuple[int, float]:
        """(nodes to ask for, expected tokens per unit of cost of drafting them): ``limit``
        with the rate it expects, for a chooser weighing sources (the hybrid)."""
        return max_nodes, 1.0

    def size(self, draft: Draft, max_nodes: int, max_depth: int | None = None) -> Draft:
        return size_draft(draft, None, max_nodes, max_depth)

    def feedback(self, out: StepOutcome) -> None:
        self.shared.observe_times(self.source, out)
        self.context.extend(out.emitted)
        self._label(final=False)

    def end(self) -> None:
        self._label(final=True)

    # -- labelling drafted nodes for the calibration, once their continuation is known --
    def _remember(self, draft: Draft) -> None:
        if self.shared.calibrate and len(draft):
            self.pending.append((len(self.context), draft, max(draft.depths(), default=0)))

    def _label(self, final: bool) -> None:
        cal = self.shared.calibration(self.source)
        if cal is None or not self.pending:
            return
        known, keep = len(self.context), []
        for pos, draft, depth in self.pending:
            if final or pos + depth <= known:
                cal.record(draft, self.context[pos : pos + depth])
            else:
                keep.append((pos, draft, depth))
        self.pending = keep

    def expected_rate(self, draft: Draft) -> float:
        """Expected tokens per unit of cost of verifying ``draft`` as it is (its
        probabilities taken as acceptance estimates), drafting cost included."""
        c = self.shared.cost_model().cost(1 + len(draft)) + len(draft) * self.shared.draft_cost(self.source)
        return (1.0 + sum(draft.probs)) / c


class CostControl(DraftControl):
    """``cost``: calibrated probabilities, the node count with the best tokens per cost
    (or, where the engine sets a ``price``, every node whose probability pays it)."""

    def size(self, draft: Draft, max_nodes: int, max_depth: int | None = None) -> Draft:
        if len(draft) == 0:
            return draft
        self._remember(draft)
        cal = self.shared.calibration(self.source)
        draft = cal.apply(draft) if cal is not None else draft
        if self.shared.price is not None:
            price = self.shared.price()
            paying = sum(1 for p in draft.probs if p >= price) if price > 0 else len(draft)
            return size_draft(draft, None, min(max_nodes, paying), max_depth)
        return size_draft(draft, self.shared.cost_model(), max_nodes, max_depth)


class BetaTSControl(DraftControl):
    """``beta-ts``: draw theta from the source's posterior, draft the best length for it."""

    def __init__(self, shared: ControlState, source: str = "suffix", max_len: int | None = None) -> None:
        super().__init__(shared, source)
        self.max_len = max_len
        self.theta = 0.0
        self.keep_drafting = lambda depth, q: True  # the length is decided up front

    def plan(self, max_nodes: int) -> tuple[int, float]:
        cap = max_nodes if self.max_len is None else min(max_nodes, self.max_len)
        self.theta = self.shared.posterior(self.source).sample(self.shared.rng)
        return best_length(self.theta, cap, self.shared.cost_model(), self.shared.draft_cost(self.source))

    def size(self, draft: Draft, max_nodes: int, max_depth: int | None = None) -> Draft:
        """The top ``max_nodes`` nodes (the drafted length the draw chose)."""
        if len(draft) == 0:
            return draft
        self._remember(draft)
        return subtree(draft, top_nodes(draft, max_nodes, max_depth))

    def feedback(self, out: StepOutcome) -> None:
        if len(out.verified):
            depth = max(out.verified.depths())
            # a chain's tokens are Bernoulli trials until the first rejection
            self.shared.posterior(self.source).update(out.accepted, 1.0 if out.accepted < depth else 0.0)
        super().feedback(out)


class CalibrationTSControl(BetaTSControl):
    """``calibration-ts``: per token, the calibrated acceptance of the drafter's confidence
    (the posterior's draw where the calibration has seen nothing); drafting stops at the
    first token whose expected gain no longer pays for its share of the cost."""

    def __init__(self, shared: ControlState, source: str = "suffix", max_len: int | None = None) -> None:
        super().__init__(shared, source, max_len)
        self.keep_drafting = self._keep_drafting
        self._chain_p, self._gain, self._cost = 1.0, 1.0, 1.0

    def plan(self, max_nodes: int) -> tuple[int, float]:
        k, rate = super().plan(max_nodes)
        self._chain_p, self._gain, self._cost = 1.0, 1.0, 1.0
        cap = max_nodes if self.max_len is None else min(max_nodes, self.max_len)
        return (cap if k or self._token_pays(1, self.theta) else 0), rate

    def _acceptance(self, depth: int, q: float) -> float:
        cal = self.shared.calibration(self.source)
        f = cal.factor(q, depth) if cal is not None else None
        return self.theta if f is None else f

    def _token_pays(self, depth: int, a: float) -> bool:
        cost = self.shared.cost_model()
        step = cost.cost(1 + depth) - cost.cost(depth) + self.shared.draft_cost(self.source)
        return self._chain_p * a * self._cost > self._gain * step  # (gain + p a) / (cost + step) > gain / cost

    def _keep_drafting(self, depth: int, q: float) -> bool:
        """Called by a paced drafter before keeping its token at ``depth`` (confidence ``q``)."""
        a = self._acceptance(depth, q)
        if not self._token_pays(depth, a):
            return False
        cost = self.shared.cost_model()
        self._chain_p *= a
        self._gain += self._chain_p
        self._cost += cost.cost(1 + depth) - cost.cost(depth) + self.shared.draft_cost(self.source)
        return True

    def size(self, draft: Draft, max_nodes: int, max_depth: int | None = None) -> Draft:
        """Suffix drafts (free to draft): calibrated cost sizing; paced drafts: as drafted."""
        if len(draft) == 0:
            return draft
        self._remember(draft)
        cal = self.shared.calibration(self.source)
        if self.source == "suffix" and cal is not None:
            return size_draft(cal.apply(draft), self.shared.cost_model(), max_nodes, max_depth)
        return subtree(draft, top_nodes(draft, max_nodes, max_depth))


__all__ = [
    "POLICIES",
    "StepOutcome",
    "BetaPosterior",
    "StepRate",
    "ControlState",
    "DraftControl",
    "CostControl",
    "BetaTSControl",
    "CalibrationTSControl",
    "chain_rate",
    "best_length",
]
