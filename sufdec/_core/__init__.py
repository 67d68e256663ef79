"""C++17 suffix-tree core (nanobind). See ``suffix_tree.h`` for the design."""

from ._suffix_tree import SuffixTree, Matcher  # noqa: F401

__all__ = ["SuffixTree", "Matcher"]
