"""Batch rows to drafting-service requests, kept only while vLLM holds the request.

vLLM hands the proposer batch rows; the worker tells us which request each row is. A
running request is one ``DraftRequest`` of the drafting service (``sufdec.drafters``:
the registry's chain drafter over the store's tree and the request's own tokens, its
draft control, learning), plus how many of the row's tokens it has seen and the chain it
proposed last. At each step the row's new tokens are the previous step's outcome: the
service's feedback gets them with the accepted count (the chain's tokens that came out).
The request is finished (learned if it ended by itself) when the worker reports vLLM is
done with it, so nothing here outlives the requests vLLM holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sufdec.drafters.service import DraftRequest, DraftService, StepOutcome
from sufdec.suffix.draft import Draft


@dataclass
class LiveRequest:
    """One running request: its drafting-service request and what it has seen."""

    request: DraftRequest
    seen: int  # tokens of the request (prompt + output) fed to its drafter
    final: frozenset[int]  # tokens that end the request: nothing is drafted past them
    proposed: Draft = field(default_factory=Draft)  # the chain proposed at the last step


class LiveRequests:
    """Every running request's drafting state, keyed by vLLM's request id."""

    def __init__(self, service: DraftService) -> None:
        self.service = service
        self._live: dict[str, LiveRequest] = {}

    def __len__(self) -> int:
        return len(self._live)

    def __contains__(self, req_id: str) -> bool:
        return req_id in self._live

    def draft(self, req_id: str, tokens: Sequence[int], limit: int, final: Iterable[int] = ()) -> list[int]:
        """A chain of at most ``limit`` tokens continuing ``tokens`` (the request's prompt
        and output so far; only the part not seen before is read)."""
        live = self._live.get(req_id)
        if live is None or len(tokens) < live.seen:  # new (or, defensively, rewound)
            if live is not None:
                live.request.finish([], finished=False)
            request = self.service.start(_ints(tokens))
            live = self._live[req_id] = LiveRequest(request, len(tokens), frozenset(final))
        elif len(tokens) > live.seen:
            new = _ints(tokens[live.seen :])
            live.seen = len(tokens)
            live.request.feedback(StepOutcome(live.proposed, _accepted(live.proposed, new), new))
            live.proposed = Draft()
        if limit <= 0:
            return []
        live.proposed = live.request.propose(limit, live.final)[1]
        return live.proposed.token_ids

    def finish(self, req_id: str, output: list[int] | None) -> None:
        """vLLM is done with ``req_id``: ``output`` is what the user received if the request
        ended by itself (learned once, by the service), None if it was aborted."""
        live = self._live.pop(req_id, None)
        if live is not None:
            live.request.finish(output or [], finished=output is not None)
        elif output:  # never drafted for (a one-token output): learned all the same
            self.service.learn_output(output)


def _accepted(chain: Draft, emitted: list[int]) -> int:
    """How many of ``chain``'s tokens the step accepted: its common prefix with what came
    out, the last token (vLLM's bonus) excluded."""
    n = 0
    for drafted, came in zip(chain.token_ids, emitted[:-1]):
        if drafted != came:
            break
        n += 1
    return n


def _ints(tokens: Sequence[int]) -> list[int]:
    """Python ints from a list or a numpy row (vLLM's ``token_ids_cpu`` holds int32)."""
    tolist = getattr(tokens, "tolist", None)
    return tolist() if tolist is not None else [int(t) for t in tokens]
