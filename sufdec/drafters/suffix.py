"""The suffix drafter: SuffixDecoding's two trees behind the Drafter protocol.

Each step drafts from the global tree (all stored outputs) and the request's own tree
(its prompt plus what it has generated so far) in one core call, as its
``DraftSettings`` say: by default one tree merged over both trees and several match
lengths (``mode="merged"``), or the published rule, the higher-scoring of the two
trees' drafts (``mode="paper"``). The global tree is matched through an incremental
cursor, so a step costs O(accepted tokens) to match rather than re-matching the whole
context. ``chain=True`` keeps only each draft's most probable path. Learning finished
outputs is the drafting service's (``sufdec.drafters.service``), not the drafter's.
"""

from __future__ import annotations

from sufdec.drafters.base import RETARGET, ContextDrafter
from sufdec.drafters.settings import DraftSettings
from sufdec.drafters.sizing import best_chain
from sufdec.suffix import RequestTree, SuffixIndex, draft_both
from sufdec.suffix.draft import Draft


class SuffixDrafter(ContextDrafter):
    """Drafts from a global ``SuffixIndex`` (None: the request's own tree only) and a
    per-request tree; ``chain``: only the most probable path of each draft."""

    abilities = frozenset({RETARGET})

    def __init__(
        self, global_tree: SuffixIndex | None, settings: DraftSettings = DraftSettings(), chain: bool = False
    ) -> None:
        super().__init__()
        self.global_tree = global_tree
        self.settings = settings.replace(single_path=True) if chain else settings
        self.chain = chain
        self._cursor = None
        self._request: RequestTree | None = None
        self._budgets = {self.settings.max_spec_tokens: self.settings}

    def begin(self, prompt_ids: list[int]) -> None:
        super().begin(prompt_ids)
        self._cursor = None
        if self.global_tree is not None:
            self._cursor = self.global_tree.matcher()
            self._cursor.feed(self.context)
        self._request = (
            RequestTree(self.context, max_depth=self.settings.max_depth) if self.settings.use_request_tree else None
        )

    def draft(self, max_nodes: int) -> Draft:
        s = self.settings
        budget = min(max_nodes, s.max_spec_tokens)
        if budget <= 0:
            return Draft()
        settings = self._budgets.get(budget)
        if settings is None:  # a smaller budget near the length cap: one settings object each
            settings = self._budgets[budget] = s.replace(max_spec_tokens=budget)
        draft = draft_both(self._cursor, self._request, settings)
        return best_chain(draft) if self.chain else draft

    def observe(self, new_ids: list[int]) -> None:
        super().observe(new_ids)
        if self._cursor is not None:
            self._cursor.feed(new_ids)
        if self._request is not None:
            self._request.extend(new_ids)

    def use_tree(self, tree: SuffixIndex | None) -> None:
        """Draft from another global tree (the store reloaded it): the context is rematched."""
        if tree is not self.global_tree:
            context, prompt_len = self.context, self.prompt_len
            self.global_tree = tree
            self.begin(context)
            self.prompt_len = prompt_len

    def end(self, output_ids: list[int], finished: bool) -> None:
        self._cursor = None
        self._request = None
