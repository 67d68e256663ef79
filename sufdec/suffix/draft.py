"""The one contract between drafting and verifying: a flat token tree."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Draft:
    """A speculated token tree, flattened in topological order.

    ``token_ids[i]`` is node i's token; ``parents[i]`` is the index of its parent node,
    or -1 when the node continues the last verified token directly; a parent always comes
    before its children. ``probs[i]`` is the drafter's estimate that the path to node i
    is accepted (product of count ratios from the match point). ``score`` is the sum of
    ``probs``; ``match_len`` is the length of the context suffix the draft was matched on.
    A chain is a tree whose parents are ``i - 1``; an empty draft has no nodes.
    """

    token_ids: list[int] = field(default_factory=list)
    parents: list[int] = field(default_factory=list)
    probs: list[float] = field(default_factory=list)
    score: float = 0.0
    match_len: int = 0

    def __len__(self) -> int:
        return len(self.token_ids)

    @staticmethod
    def chain(tokens: list[int], probs: list[float] | None = None) -> "Draft":
        """A draft that is a single path ``tokens[0] -> tokens[1] -> ...``."""
        p = list(probs) if probs is not None else [1.0] * len(tokens)
        return Draft(list(tokens), list(range(-1, len(tokens) - 1)), p, float(sum(p)), 0)

    def depths(self) -> list[int]:
        """Depth of every node (1 for children of the last verified token)."""
        out: list[int] = []
        for parent in self.parents:
            out.append(1 if parent < 0 else out[parent] + 1)
        return out
