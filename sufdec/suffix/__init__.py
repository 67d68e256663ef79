"""Thin Python face of the C++ suffix tree (never imports torch).

``SuffixIndex`` is the global tree over stored outputs, ``RequestTree`` the per-request
tree over prompt + generated tokens, ``Matcher`` the incremental matcher a decode loop
feeds one step at a time, and ``draft_both`` drafts from both trees in one call: the
paper's rule (the better tree's draft) or one tree merged over both, as one
``SuffixSettings`` (``sufdec.suffix.settings``) says. ``SuffixTree`` and ``speculate_both``
are the core's own class and function, for callers that time the core itself
(``sufdec.bench.tree``): the CLI and the benchmarks reach the core through this package only.
"""

from sufdec._core import Matcher, SuffixTree, speculate_both
from sufdec.suffix.draft import Draft
from sufdec.suffix.index import RequestTree, SuffixIndex, draft_both, pick_best, to_draft
from sufdec.suffix.settings import MODES, PRESETS, SuffixSettings

__all__ = [
    "Draft",
    "MODES",
    "Matcher",
    "PRESETS",
    "RequestTree",
    "SuffixIndex",
    "SuffixSettings",
    "SuffixTree",
    "draft_both",
    "pick_best",
    "speculate_both",
    "to_draft",
]
