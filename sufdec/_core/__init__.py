"""C++17 suffix-tree core (nanobind). See ``suffix_tree.h`` for the design."""

from ._suffix_tree import CoreDraft, Matcher, SpecConfig, SuffixTree, speculate_both  # noqa: F401

__all__ = ["CoreDraft", "Matcher", "SpecConfig", "SuffixTree", "speculate_both"]
