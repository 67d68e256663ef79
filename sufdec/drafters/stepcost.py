"""What verifying one more drafted token costs, measured on the engine while it runs.

Every engine step that verified drafts gives one observation: the requests in it, the
drafted tokens it verified, its seconds and the tokens it output. An exponentially
weighted least-squares fit (``forget`` per step: the last ~50 steps count most) of

    seconds = a + c * requests + b * drafted

says what one more drafted token adds to a step now, whatever else the machine is doing
(the curve ``sufdec.engine.calibrate`` measures at load takes each size's fastest run: the
uncontended cost). Two readings of it:

* ``token_cost``: ``b`` times the engine's output rate over the same steps, in tokens of
  output, clamped to [0, 1]: what a batch engine gives up to verify one more token, and
  so the least calibrated probability a drafted token must have (the vLLM adapter; one
  request on this 2-core CPU prices it below 0.1, a big batch far higher, a GPU far from
  its compute bound near 0). ``prior`` until the data can tell.
* ``cost_model(base)``: for one request at a time (the decode loop), the relative cost
  ``cost(1 + d) = (a + b d) / a`` of a forward over 1 + d tokens. Here the fit starts from
  ``base`` (the curve measured at load, each size's fastest run): its slope is a prior
  worth ``prior_weight`` (drafted tokens squared, as the fit's spread of draft sizes is
  counted), so a few slow steps on a busy machine (heavy-tailed, when the scheduler runs
  other work) cannot set the price alone, steps with varied draft sizes soon outweigh it,
  and when drafts stop varying (drafting stopped paying) the curve drifts back towards
  ``base``, which drafts again and measures again.

No torch here.
"""

from __future__ import annotations

import math
from collections import deque

from sufdec.drafters.sizing import CostModel

# the sizes a live cost curve is given at (linear in between, extrapolated beyond)
_CURVE_KS = (1, 2, 4, 8, 16, 32, 64)


TOKEN_COST_PRIOR = 0.35  # what a verified token costs, in tokens of output, before the steps can tell


class StepCost:
    """The online fit of step time against requests and drafted tokens (see the module)."""

    def __init__(
        self,
        prior: float = TOKEN_COST_PRIOR,
        forget: float = 0.98,
        min_steps: int = 16,
        keep: int = 2048,
        prior_weight: float = 100.0,
    ) -> None:
        self.prior = prior
        self.prior_weight = prior_weight
        self.forget = forget
        self.min_steps = min_steps
        self.history: deque[tuple[int, int, float, int]] = deque(maxlen=keep)
        self.reset()

    def reset(self) -> None:
        self.steps = 0
        # weighted sums of 1, R, D, T, R^2, D^2, RD, RT, DT and the output
        self._s = [0.0] * 10
        self._curve: tuple[int, CostModel, CostModel] | None = None  # (steps, base, curve) last made
        self.history.clear()

    def observe(self, requests: int, drafted: int, seconds: float, output_tokens: int) -> None:
        """One step: ``requests`` requests verified ``drafted`` drafted tokens in ``seconds``
        and output ``output_tokens`` tokens."""
        if requests <= 0 or seconds <= 0 or not math.isfinite(seconds):
            return
        r, d, t, f = int(requests), int(drafted), float(seconds), self.forget
        for i, x in enumerate((1.0, r, d, t, r * r, d * d, r * d, r * t, d * t, output_tokens)):
            self._s[i] = f * self._s[i] + x
        self.steps += 1
        self.history.append((r, d, t, int(output_tokens)))

    def _moments(self) -> tuple[float, ...] | None:
        """(weight, means of R, D, T, (co)variances RR, DD, RD, RT, DT) of the weighted
        steps; None before ``min_steps``."""
        w, sr, sd, st, srr, sdd, srd, srt, sdt, _ = self._s
        if self.steps < self.min_steps or w <= 0:
            return None
        mr, md, mt = sr / w, sd / w, st / w
        return (
            w,
            mr,
            md,
            mt,
            srr / w - mr * mr,
            sdd / w - md * md,
            srd / w - mr * md,
            srt / w - mr * mt,
            sdt / w - md * mt,
        )

    def fit(self) -> tuple[float, float, float] | None:
        """(a, c, b): seconds per step, per request and per drafted token; None while the
        data cannot tell what a drafted token costs."""
        moments = self._moments()
        if moments is None:
            return None
        _, mr, md, mt, v_rr, v_dd, v_rd, v_rt, v_dt = moments
        if v_dd <= 1e-6 * max(1.0, md * md):
            return None  # the draft sizes hardly varied
        det = v_rr * v_dd - v_rd * v_rd
        if v_rr <= 1e-6 * max(1.0, mr * mr) or det <= 1e-6 * v_rr * v_dd:
            c, b = 0.0, v_dt / v_dd  # one request count (or requests move with drafts): drafts alone
        else:
            c, b = (v_rt * v_dd - v_dt * v_rd) / det, (v_dt * v_rr - v_rt * v_rd) / det
        b = min(max(b, 0.0), mt)  # a drafted token cannot cost more than a whole step
        return mt - c * mr - b * md, c, b

    @property
    def token_cost(self) -> float:
        fitted = self.fit()
        if fitted is None or self._s[3] <= 0:
            return self.prior
        rate = self._s[9] / self._s[3]  # tokens output per second over the same steps
        return min(1.0, max(0.0, fitted[2] * rate))

    def cost_model(self, base: CostModel) -> CostModel:
        """The relative cost of a forward over k tokens for one request, from the fit
        (``base`` until there is one)."""
        if self._curve is not None and self._curve[0] == self.steps and self._curve[1] is base:
            return self._curve[2]
        curve = self._fit_curve(base)
        self._curve = (self.steps, base, curve)
        return curve

    def _fit_curve(self, base: CostModel) -> CostModel:
        """``base`` with its excess over one forward scaled by what the steps measure now:
        ``seconds = a + b d`` fitted with ``b`` drawn towards ``base``'s own slope."""
        moments = self._moments()
        if moments is None:
            return base
        w, _, md, mt, _, v_dd, _, _, v_dt = moments
        s_dd, s_dt = w * v_dd, w * v_dt  # weighted spread of draft sizes, covariance
        slope = _slope(base)  # base's cost of a drafted token, in forwards
        one = mt / (1.0 + slope * md)  # a forward over the root alone, if base were right
        lam = self.prior_weight
        b = (s_dt + lam * slope * one) / (max(s_dd, 0.0) + lam)
        b = min(max(b, 0.0), mt)
        a = mt - b * md
        if a <= 0:
            return base
        rel = b / a  # a drafted token now, in forwards
        if slope > 1e-6:  # keep the measured shape (flat, then steeper on a CPU), scaled
            costs = tuple(1.0 + (base.cost(k) - 1.0) * rel / slope for k in _CURVE_KS)
        else:  # a flat base (a GPU): what the steps add, linearly
            costs = tuple(base.cost(k) + rel * (k - 1) for k in _CURVE_KS)
        return CostModel(_CURVE_KS, costs)


def _slope(base: CostModel) -> float:
    """The least-squares slope of ``base`` over 1 + d tokens, d = 1..31 (its points there)."""
    pts = [(k - 1, base.cost(k) - 1.0) for k in _CURVE_KS if 1 < k <= 32]
    return max(0.0, sum(d * c for d, c in pts) / sum(d * d for d, _ in pts))
