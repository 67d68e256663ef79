"""The store's only contact with the suffix tree: build, load, extend, shrink.

Imported lazily so ``import sufdec.store`` stays light; everything else in the store
treats the tree as an opaque object with ``serialize()``.
"""

from __future__ import annotations

from array import array
from typing import Any


def new_tree(max_depth: int) -> Any:
    from sufdec.suffix import SuffixIndex

    return SuffixIndex(max_depth=max_depth)


def load_tree(data: bytes) -> Any:
    from sufdec.suffix import SuffixIndex

    return SuffixIndex.load(data)


def add(tree: Any, seq_id: int, tokens: array) -> None:
    tree.add(seq_id, tokens)


def remove(tree: Any, seq_id: int) -> None:
    """Remove a sequence if the tree has it (log replay may name one it never saw)."""
    try:
        tree.remove(seq_id)
    except (KeyError, ValueError, IndexError):
        pass
