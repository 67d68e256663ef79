"""How much of each drafted chain vLLM verifies: the calibrated probability against the
cost of one more verified token.

vLLM verifies a whole batch in one forward, so a drafted token costs its share of that
forward whether it is accepted or not. On a GPU far from its compute bound that share is
close to nothing and every drafted token is worth verifying; on a CPU, or a GPU with a big
batch, one more token costs a noticeable fraction of what generating a token costs. So a
chain is cut before the first token whose probability of being accepted (its whole path
so far) is below ``token_cost``, that cost in tokens of output: the token is verified
when it is expected to pay for itself.

The probabilities are the drafter's, corrected by an ``AcceptanceCalibration``
(``sufdec.drafters.budget``) that learns, per depth and probability, how often drafted
tokens were really generated next; as in ``sufdec generate``, every drafted token is
labelled once its continuation is known, verified or not. On the Spider prompts the raw
count ratios are pessimistic on exact repeats (one stored occurrence gives 0.67 per
token) and optimistic on a prompt's own repeated schema; the correction fixes both.
"""

from __future__ import annotations

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
