"""The suffix drafter: SuffixDecoding's two trees behind the Drafter protocol.

Each step asks the global tree (all stored outputs) and the request's own tree (its
prompt plus what it has generated so far) for a draft and keeps the higher-scoring one,
as in the paper. The global tree is matched through an incremental cursor, so a step
costs O(accepted tokens) to match rather than re-matching the whole context. When the
request ends, its output is appended to the store (online learning) unless disabled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from sufdec.drafters.base import ContextDrafter
from sufdec.suffix import RequestTree, SpecParams, SuffixIndex, draft_both
from sufdec.suffix.draft import Draft


@dataclass(frozen=True)
class SuffixDrafterConfig:
    """How drafts are grown from the trees (see ``sufdec generate --help``).

    ``mode="merged"`` (default) drafts one tree from both trees and several match lengths
    and keeps the most probable paths; ``mode="paper"`` is the published algorithm (the
    best-scoring single draft, budget capped by factor x match length).
    """

    use_tree: bool = True  # tree drafts; False gives a single path
    max_spec_tokens: int = 32
    max_spec_factor: float = 1000.0
    max_spec_offset: float = 0.0
    min_token_prob: float = 0.0
    use_request_tree: bool = True
    max_depth: int = 64
    mode: str = "merged"

    @staticmethod
    def paper(**overrides) -> "SuffixDrafterConfig":
        """The published SuffixDecoding settings (factor 4, min probability 0.1)."""
        base = dict(mode="paper", max_spec_factor=4.0, min_token_prob=0.1)
        base.update(overrides)
        return SuffixDrafterConfig(**base)


class SuffixDrafter(ContextDrafter):
    """Drafts from a global ``SuffixIndex`` and a per-request tree.

    ``learn`` is called with each finished output's token ids (for instance
    ``store.append``); it is not called for requests cut short.
    """

    def __init__(
        self,
        global_tree: SuffixIndex | None,
        config: SuffixDrafterConfig = SuffixDrafterConfig(),
        learn: Callable[[list[int]], object] | None = None,
    ) -> None:
        super().__init__()
        self.global_tree = global_tree
        self.config = config
        self.learn = learn
        self._cursor = None
        self._request: RequestTree | None = None

    def begin(self, prompt_ids: list[int]) -> None:
        super().begin(prompt_ids)
        self._cursor = None
        if self.global_tree is not None:
            self._cursor = self.global_tree.matcher()
            self._cursor.feed(self.context)
        self._request = (
            RequestTree(self.context, max_depth=self.config.max_depth)
            if self.config.use_request_tree
            else None
        )

    def draft(self, max_nodes: int) -> Draft:
        budget = min(max_nodes, self.config.max_spec_tokens)
        if budget <= 0:
            return Draft()
        c = self.config
        mode = c.mode if c.use_tree else "paper"  # merged drafts are always trees
        params = SpecParams(budget, c.max_spec_factor, c.max_spec_offset, c.min_token_prob, c.use_tree, mode)
        return draft_both(self._cursor, self._request, params)

    def observe(self, new_ids: list[int]) -> None:
        super().observe(new_ids)
        if self._cursor is not None:
            self._cursor.feed(new_ids)
        if self._request is not None:
            self._request.extend(new_ids)

    def end(self, output_ids: list[int], finished: bool) -> None:
        self._cursor = None
        self._request = None
        if finished and self.learn is not None and output_ids:
            self.learn(list(output_ids))
