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
engine step in the worker (from the worker's ``execute_model`` to the end of ``propose``)
against the tokens vLLM scheduled for it, fits ``seconds = a + b * tokens`` over the
recent steps, and prices a token at ``b * tokens output per second``: the output the
engine gives up while it verifies that token. With one request on this 2-core CPU that
is ~0.07 (a step's fixed cost is ~13 tokens' worth); with 32 requests it is ~0.6, where
plain decoding beat every speculative method at a fixed cost (docs/BENCHMARKS.md); on a
GPU far from its compute bound it stays near 0.

The probabilities are the drafter's, corrected by an ``AcceptanceCalibration``
(``sufdec.drafters.budget``) that learns, per depth and probability, how often drafted
tokens were really generated next; as in ``sufdec generate``, every drafted token is
labelled once its continuation is known, verified or not. On the Spider prompts the raw
count ratios are pessimistic on exact repeats (one stored occurrence gives 0.67 per
token) and optimistic on a prompt's own repeated schema; the correction fixes both.
"""

from __future__ import annotations

import math
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
    """What verifying one more token costs, in tokens of output, measured on the engine.

    Every step gives one observation: the tokens vLLM scheduled (``started``) and, at the
    end of ``propose``, the seconds since and the tokens the step output (``ended``).
    Exponentially weighted least squares (``forget`` per step: the last ~50 steps count)
    fits ``seconds = a + b * tokens``; ``token_cost`` is then ``b`` times the output rate
    over the same steps, clamped to [0, 1]. Until ``min_steps`` steps with different token
    counts were seen it is ``prior``.
    """

    def __init__(self, prior: float, forget: float = 0.98, min_steps: int = 16) -> None:
        self.prior = prior
        self.forget = forget
        self.min_steps = min_steps
        self.reset()

    def reset(self) -> None:
        self.steps = 0
        self._w = self._n = self._t = self._nn = self._nt = self._out = 0.0
        self._start: tuple[float, int] | None = None

    def started(self, now: float, scheduled_tokens: int) -> None:
        """A step began at ``now`` (seconds) computing ``scheduled_tokens`` tokens."""
        self._start = (now, int(scheduled_tokens))

    def ended(self, now: float, output_tokens: int) -> None:
        """The step that began last ended at ``now``, having output ``output_tokens``."""
        if self._start is None:
            return
        begun, n = self._start
        self._start = None
        seconds = now - begun
        if n <= 0 or seconds <= 0 or not math.isfinite(seconds):
            return
        f = self.forget
        self._w = f * self._w + 1.0
        self._n = f * self._n + n
        self._t = f * self._t + seconds
        self._nn = f * self._nn + n * n
        self._nt = f * self._nt + n * seconds
        self._out = f * self._out + output_tokens
        self.steps += 1

    def fit(self) -> tuple[float, float] | None:
        """(a, b): seconds per step and per token, or None while the data cannot tell."""
        if self.steps < self.min_steps or self._w <= 0:
            return None
        mean_n, mean_t = self._n / self._w, self._t / self._w
        var_n = self._nn / self._w - mean_n * mean_n
        if var_n <= 1e-6 * max(1.0, mean_n * mean_n):
            return None
        b = max(0.0, (self._nt / self._w - mean_n * mean_t) / var_n)
        b = min(b, mean_t / mean_n)  # a token cannot cost more than its share of a step
        return mean_t - b * mean_n, b

    @property
    def token_cost(self) -> float:
        fitted = self.fit()
        if fitted is None or self._t <= 0:
            return self.prior
        rate = self._out / self._t  # tokens output per second over the same steps
        return min(1.0, max(0.0, fitted[1] * rate))
