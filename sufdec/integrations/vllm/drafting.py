"""Per-request drafting state inside vLLM, kept only while a request runs.

vLLM hands the proposer batch rows; the worker tells us which request each row is. A
request's state is a ``SuffixDrafter`` (the global tree's incremental matcher plus the
request's own prompt-and-output tree, as ``sufdec generate`` drafts) and how many of the
row's tokens it has seen. It is created the first time the request's row is drafted for,
fed only the row's new tokens at each step, and dropped when the worker reports the
request finished or aborted, so nothing here outlives the requests vLLM holds.

Drafts are chains (vLLM verifies one path per request): the most probable path of the
merged draft, cut after an EOS or stop token, to the step's budget and, with a
``ChainSizer``, where the calibrated probability no longer pays for verifying a token.
Each drafted chain is kept until the tokens that followed it are known, then taught to
the sizer's calibration.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sufdec.drafters.budget import cut_below
from sufdec.drafters.suffix import SuffixDrafter
from sufdec.integrations.vllm.sizing import ChainSizer
from sufdec.suffix import DraftSettings, SuffixIndex
from sufdec.suffix.draft import Draft


@dataclass
class LiveRequest:
    """One running request's drafting state."""

    drafter: SuffixDrafter
    seen: int                 # tokens of the request (prompt + output) fed to the drafter
    final: frozenset[int]     # tokens that end the request: nothing is drafted past them
    pending: list[tuple[int, Draft]] = field(default_factory=list)  # (context length, chain)


class LiveRequests:
    """The drafting state of every running request, keyed by vLLM's request id."""

    def __init__(self, settings: DraftSettings, tree: SuffixIndex | None, sizer: ChainSizer | None = None) -> None:
        self.settings = settings.replace(spec="chain")
        self.sizer = sizer
        self._tree = tree
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
            drafter = SuffixDrafter(self._tree, self.settings, chain=True)
            drafter.begin(_ints(tokens))
            live = self._live[req_id] = LiveRequest(drafter, len(tokens), frozenset(final))
        elif len(tokens) > live.seen:
            live.drafter.observe(_ints(tokens[live.seen:]))
            live.seen = len(tokens)
            self._label(live, final=False)
        if limit <= 0:
            return []
        chain = cut_below(live.drafter.draft(self.settings.max_spec_tokens), live.final)
        if self.sizer is None:
            return chain.token_ids[:limit]
        if len(chain):
            live.pending.append((live.seen, chain))
        return self.sizer.cut(chain, limit).token_ids

    def _label(self, live: LiveRequest, final: bool) -> None:
        """Teach the sizer every pending chain whose continuation is now known (all at the end)."""
        if self.sizer is None or not live.pending:
            return
        context, keep = live.drafter.context, []
        for pos, chain in live.pending:
            if final or pos + len(chain) <= len(context):
                self.sizer.record(chain, context[pos:pos + len(chain)])
            else:
                keep.append((pos, chain))
        live.pending = keep

    def drop(self, req_id: str) -> None:
        """Forget a request (finished, aborted or preempted for good)."""
        live = self._live.pop(req_id, None)
        if live is not None:
            self._label(live, final=True)
            live.drafter.end([], finished=False)

    def use_tree(self, tree: SuffixIndex | None) -> None:
        """Draft from another global tree object (the store reloaded its tree): every live
        request rematches its context on it."""
        if tree is self._tree:
            return
        self._tree = tree
        for live in self._live.values():
            context = live.drafter.context
            live.drafter.global_tree = tree
            live.drafter.begin(context)


def _ints(tokens: Sequence[int]) -> list[int]:
    """Python ints from a list or a numpy row (vLLM's ``token_ids_cpu`` holds int32)."""
    tolist = getattr(tokens, "tolist", None)
    return tolist() if tolist is not None else [int(t) for t in tokens]
