"""Shared helpers for the store tests: a toy tokenizer and the tree stand-in switch."""

from __future__ import annotations

import os
from typing import Any

from sufdec.store import TokenizerInfo

TOK = TokenizerInfo("bytes", "fp-bytes-v1")
VOCAB = 256


def encode(texts: list[str]) -> list[list[int]]:
    """Token ids = the UTF-8 bytes of the text (deterministic, vocab 256)."""
    return [list(t.encode("utf-8")) for t in texts]


def real_tree_available() -> bool:
    if os.environ.get("SUFDEC_TEST_FAKE_TREE"):
        return False
    try:
        from sufdec.suffix import SuffixIndex  # noqa: F401
    except ImportError:
        return False
    return True


def use_fake_tree_if_needed(monkeypatch: Any = None) -> None:
    if real_tree_available():
        return
    from sufdec.store import _tree

    from .fake_tree import FakeSuffixIndex

    def new_tree(max_depth: int) -> FakeSuffixIndex:
        return FakeSuffixIndex(max_depth)

    if monkeypatch is None:
        _tree.new_tree = new_tree
        _tree.load_tree = FakeSuffixIndex.load
    else:
        monkeypatch.setattr(_tree, "new_tree", new_tree)
        monkeypatch.setattr(_tree, "load_tree", FakeSuffixIndex.load)
