"""How much of each drafted chain vLLM verifies: the calibrated probability against the
cost of one more verified token.

vLLM verifies a whole batch in one forward, so a drafted token costs its share of that
forward whether it is accepted or not. On a GPU far from its compute bound that share is
close to nothing and every drafted token is worth verifying; on a CPU, or a GPU with a big
batch, one more token costs a noticeable fraction of what generating a token costs. So a
chain is cut before the first token whose probability of being accepted (its whole path
so far) is below ``token_cost``, that cost in tokens of output: the token is verified
when it is expected to pay for itself.

What one more verified token costs depends on the hardware and on how many requests share
the step, so by default (``token_cost: "auto"``) it is measured: ``StepCost`` times every
decode step in the worker (from the worker's ``execute_model`` to the end of ``propose``)
against the requests and drafted tokens vLLM scheduled for it, fits what one more drafted
token adds to a step, and prices it at that many seconds of the engine's output: the
output the engine gives up while it verifies that token. With one request on this 2-core
CPU that is below 0.1; it grows with the batch, where plain decoding beat every
speculative method at a fixed cost (docs/BENCHMARKS.md); on a GPU far from its compute
bound it stays near 0.

The probabilities are the drafter's, corrected by an ``AcceptanceCalibration``
(``sufdec.drafters.budget``) that learns, per depth and probability, how often drafted
tokens were really generated next; as in ``sufdec generate``, every drafted token is
labelled once its continuation is known, verified or not. On the Spider prompts the raw
count ratios are pessimistic on exact repeats (one stored occurrence gives 0.67 per
token) and optimistic on a prompt's own repeated schema; the correction fixes both.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence

from sufdec.drafters.budget import AcceptanceCalibration, subtree
from sufdec.suffix.draft import Draft


class ChainSizer:
    """Cuts chains by calibrated acceptance probability; learns from what was generated."""

    def __init__(self, token_cost: float) -> None:
        self.token_cost = token_cost
        self.calibration = AcceptanceCalibration()

    def cut(self, chain: Draft, limit: int) -> Draft:
        """The longest prefix of ``chain`` (at most ``limit`` tokens) whose every token has
        a calibrated probability of at least ``token_cost``."""
        if limit <= 0 or len(chain) == 0:
            return Draft(match_len=chain.match_len)
        if self.token_cost <= 0:
            return subtree(chain, list(range(min(limit, len(chain)))))
        probs = self.calibration.apply(chain).probs
        keep = 0
        while keep < min(limit, len(chain)) and probs[keep] >= self.token_cost:
            keep += 1
        return subtree(chain, list(range(keep)))

    def record(self, chain: Draft, continuation: Sequence[int]) -> None:
        """Label a drafted chain against the tokens that really followed its root."""
        self.calibration.record(chain, continuation)


class StepCost:
    """What verifying one more drafted token costs, in tokens of output, measured on the engine.

    Every decode step (one without prompt tokens: prefill tokens are cheaper per token than
    drafted ones, and a step full of them would set the price) gives one observation: the
    requests in it and the drafted tokens it verifies (``started``, from vLLM's
    ``SchedulerOutput``), then at the end of ``propose`` the seconds since and the tokens it
    output (``ended``). Exponentially weighted least squares (``forget`` per step: the last
    ~50 steps count) fits ``seconds = a + c * requests + b * drafted``; ``token_cost`` is ``b``
    times the output rate over the same steps, clamped to [0, 1]. Until ``min_steps`` steps
    with different draft sizes were seen it is ``prior``. ``history`` keeps the last
    observations (requests, drafted, seconds, output) for a look at the fit.
    """

    def __init__(self, prior: float, forget: float = 0.98, min_steps: int = 16, keep: int = 2048) -> None:
        self.prior = prior
        self.forget = forget
        self.min_steps = min_steps
        self.history: deque[tuple[int, int, float, int]] = deque(maxlen=keep)
        self.reset()

    def reset(self) -> None:
        self.steps = 0
        # weighted sums of 1, R, D, T, R^2, D^2, RD, RT, DT and the output
        self._s = [0.0] * 10
        self._start: tuple[float, int, int] | None = None
        self.history.clear()

    def started(self, now: float, requests: int, drafted: int, decode_only: bool = True) -> None:
        """A step began at ``now`` (seconds) with ``requests`` requests and ``drafted`` drafted
        tokens to verify; steps that also compute prompt tokens are not observed."""
        self._start = (now, int(requests), int(drafted)) if decode_only and requests > 0 else None

    def ended(self, now: float, output_tokens: int) -> None:
        """The step that began last ended at ``now``, having output ``output_tokens``."""
        if self._start is None:
            return
        begun, r, d = self._start
        self._start = None
        t = now - begun
        if t <= 0 or not math.isfinite(t):
            return
        f = self.forget
        for i, x in enumerate((1.0, r, d, t, r * r, d * d, r * d, r * t, d * t, output_tokens)):
            self._s[i] = f * self._s[i] + x
        self.steps += 1
        self.history.append((r, d, t, int(output_tokens)))

    def fit(self) -> tuple[float, float, float] | None:
        """(a, c, b): seconds per step, per request and per drafted token; None while the
        data cannot tell what a drafted token costs."""
        w, sr, sd, st, srr, sdd, srd, srt, sdt, _ = self._s
        if self.steps < self.min_steps or w <= 0:
            return None
        mr, md, mt = sr / w, sd / w, st / w
        v_rr, v_dd, v_rd = srr / w - mr * mr, sdd / w - md * md, srd / w - mr * md
        v_rt, v_dt = srt / w - mr * mt, sdt / w - md * mt
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
