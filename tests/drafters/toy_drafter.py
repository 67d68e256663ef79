"""A drafting kind added the way a new drafter is: this one file and one registry entry.

``repeat``: drafts the continuation of the last token's previous occurrence in the context
(prompt-lookup decoding, one match length), as a chain of at most ``max_nodes`` tokens.
"""

from __future__ import annotations

from sufdec.drafters.base import ContextDrafter
from sufdec.drafters.registry import DrafterKind, register
from sufdec.suffix.draft import Draft


class RepeatDrafter(ContextDrafter):
    def __init__(self) -> None:
        super().__init__()
        self.drafts = 0

    def draft(self, max_nodes: int) -> Draft:
        ctx = self.context
        last = ctx[-1]
        for i in range(len(ctx) - 2, -1, -1):
            if ctx[i] == last:
                follow = ctx[i + 1 : i + 1 + max_nodes]
                self.drafts += 1
                return Draft(
                    follow, list(range(-1, len(follow) - 1)), [0.5 ** (d + 1) for d in range(len(follow))], match_len=1
                )
        return Draft()


KIND = register(
    DrafterKind(
        "repeat",
        lambda sources, settings: RepeatDrafter(),
        "the continuation of the last token's previous occurrence",
        chain=True,
    )
)
