"""Thin Python face of the C++ suffix tree (never imports torch).

``SuffixIndex`` is the global tree over stored outputs, ``RequestTree`` the per-request
tree over prompt + generated tokens, ``Matcher`` the incremental matcher a decode loop
feeds one step at a time, and ``draft_both`` drafts from both trees in one call: the
paper's rule (the better tree's draft) or one tree merged over both (``MERGED_PARAMS``).
"""

from sufdec._core import Matcher, SuffixTree
from sufdec.suffix.draft import Draft
from sufdec.suffix.index import (
    DEFAULT_PARAMS,
    MERGED_PARAMS,
    RequestTree,
    SpecParams,
    SuffixIndex,
    best_draft,
    draft_both,
    pick_best,
    to_draft,
)

__all__ = [
    "DEFAULT_PARAMS",
    "Draft",
    "MERGED_PARAMS",
    "Matcher",
    "RequestTree",
    "SpecParams",
    "SuffixIndex",
    "SuffixTree",
    "best_draft",
    "draft_both",
    "pick_best",
    "to_draft",
]
