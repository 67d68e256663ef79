"""Thin Python face of the C++ suffix tree: the global index and the per-request tree.

Both are the same core class (``sufdec._core.SuffixTree``): the global index holds all
stored outputs keyed by their store ids; a request tree holds one sequence, the
request's prompt plus what has been generated so far, and drafts from its own tail.
Nothing here imports torch.
"""

from __future__ import annotations

from typing import Iterable, Sequence, Union

from sufdec._core import Matcher, SuffixTree, speculate_both
from sufdec.suffix.draft import Draft
from sufdec.suffix.settings import SuffixSettings

DEFAULT = SuffixSettings()

Tokens = Union[Sequence[int], "object"]  # list/tuple of ints or a 1-d integer numpy array


def to_draft(core_draft) -> Draft:
    """Convert a core draft into the shared :class:`Draft` contract."""
    return Draft(
        list(core_draft.token_ids),
        list(core_draft.parents),
        list(core_draft.probs),
        float(core_draft.score),
        int(core_draft.match_len),
    )


class SuffixIndex:
    """The global suffix tree over stored outputs (ids are the store's int64 ids)."""

    def __init__(self, max_depth: int = 64, *, tree: SuffixTree | None = None) -> None:
        self._tree = tree if tree is not None else SuffixTree(max_depth)

    @property
    def tree(self) -> SuffixTree:
        return self._tree

    # -- content ---------------------------------------------------------------
    def add(self, seq_id: int, tokens: Tokens) -> None:
        """Add a sequence, or extend it if ``seq_id`` is already present."""
        self._tree.append(seq_id, tokens)

    def add_many(self, items: Iterable[tuple[int, Tokens]]) -> None:
        for seq_id, tokens in items:
            self._tree.append(seq_id, tokens)

    def remove(self, seq_id: int) -> None:
        """Remove a sequence; raises ValueError for an unknown id."""
        self._tree.remove(seq_id)

    def __contains__(self, seq_id: int) -> bool:
        return self._tree.has(seq_id)

    def __len__(self) -> int:
        return self._tree.num_sequences

    @property
    def num_tokens(self) -> int:
        return self._tree.num_tokens

    @property
    def num_nodes(self) -> int:
        return self._tree.num_nodes

    @property
    def max_depth(self) -> int:
        return self._tree.max_depth

    # -- drafting --------------------------------------------------------------
    def matcher(self) -> Matcher:
        """An incremental matcher for one request: ``feed`` tokens, then ``speculate``."""
        return self._tree.matcher()

    def speculate(self, context: Tokens, settings: SuffixSettings = DEFAULT) -> Draft:
        """Draft for a context from scratch, in ``settings.mode``, from this tree alone.

        The same draft as a :meth:`matcher` fed the whole context, for callers without a
        live matcher: the core finds the longest matching suffix first (a few short walks
        from the root), then locates only the match lengths drafting tries.
        """
        return to_draft(self._tree.speculate(context, settings.core))

    # -- persistence & introspection -------------------------------------------
    def serialize(self) -> bytes:
        return self._tree.serialize()

    @classmethod
    def load(cls, buffer) -> "SuffixIndex":
        """Load from ``serialize()`` bytes (any bytes-like); corrupt input raises ValueError."""
        return cls(tree=SuffixTree.load(buffer))

    def check_integrity(self) -> None:
        """Raise ValueError describing the first inconsistency, if any."""
        problem = self._tree.check_integrity()
        if problem:
            raise ValueError(f"suffix tree inconsistent: {problem}")

    def stats(self) -> dict:
        t = self._tree
        return {
            "sequences": t.num_sequences,
            "tokens": t.num_tokens,
            "nodes": t.num_nodes,
            "max_depth": t.max_depth,
            "memory_bytes": t.memory_bytes(),
            "depth_histogram": t.depth_histogram(),
        }


class RequestTree:
    """Per-request tree over the prompt plus the tokens generated so far.

    Drafting matches the request's own tail (kept incrementally by the core), so each
    step costs O(match length), not a rematch of the whole context.
    """

    _SEQ = 0

    def __init__(self, prompt: Tokens = (), max_depth: int = 64) -> None:
        self._tree = SuffixTree(max_depth)
        self._tree.append(self._SEQ, prompt)

    @property
    def tree(self) -> SuffixTree:
        return self._tree

    def extend(self, tokens: Tokens) -> None:
        """Append accepted tokens to the request's sequence."""
        self._tree.append(self._SEQ, tokens)

    def __len__(self) -> int:
        return self._tree.num_tokens

    @property
    def seq_id(self) -> int:
        """Id of the request's sequence inside :attr:`tree`."""
        return self._SEQ

    def tokens(self) -> list[int]:
        return self._tree.sequence(self._SEQ)

    def speculate(self, settings: SuffixSettings = DEFAULT) -> Draft:
        """Draft from this tree alone.

        Paper mode counts the request's own current occurrence in the probabilities'
        denominators, as published; merged mode leaves it out.
        """
        if settings.mode == "paper":
            return to_draft(self._tree.speculate_tail(self._SEQ, **settings.core_kwargs()))
        return to_draft(speculate_both(None, self._tree, self._SEQ, settings.core))


def pick_best(*drafts: Draft) -> Draft:
    """The highest-scoring draft (ties: longer match, then the earlier argument)."""
    best = Draft()
    for d in drafts:
        if d.score > best.score or (d.score == best.score and d.match_len > best.match_len and len(d)):
            best = d
    return best


def draft_both(
    matcher: Matcher | None,
    request: RequestTree | None,
    settings: SuffixSettings = DEFAULT,
) -> Draft:
    """Draft from a request's two trees in one core call.

    ``matcher`` is the global tree's :class:`Matcher`, already fed with the context;
    ``request`` the request's own tree (its sequence is the same context). Either may be
    None. In paper mode the result equals ``pick_best`` of the two trees' own drafts; in
    merged mode it is one tree whose probabilities never increase from a node to its
    children, so any top-k of it by probability is ancestor-closed.
    """
    tree = request.tree if request is not None else None
    seq_id = request.seq_id if request is not None else 0
    return to_draft(speculate_both(matcher, tree, seq_id, settings.core))
