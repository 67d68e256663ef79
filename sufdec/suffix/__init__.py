"""Thin Python face of the C++ suffix tree (never imports torch).

``SuffixIndex`` is the global tree over stored outputs, ``RequestTree`` the per-request
tree over prompt + generated tokens, ``Matcher`` the incremental matcher a decode loop
feeds one step at a time, and ``best_draft`` asks both trees and keeps the better draft.
"""

from sufdec._core import Matcher, SuffixTree
from sufdec.suffix.draft import Draft
from sufdec.suffix.index import (
    DEFAULT_PARAMS,
    RequestTree,
    SpecParams,
    SuffixIndex,
    best_draft,
    pick_best,
    to_draft,
)

__all__ = [
    "DEFAULT_PARAMS",
    "Draft",
    "Matcher",
    "RequestTree",
    "SpecParams",
    "SuffixIndex",
    "SuffixTree",
    "best_draft",
    "pick_best",
    "to_draft",
]
