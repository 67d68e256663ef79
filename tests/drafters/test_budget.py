"""Draft sizing: cost curve interpolation, best size, ancestor-closed pruning."""

from __future__ import annotations

import pytest

from sufdec.drafters.budget import (
    CostModel, best_chain, best_size, cut_below, size_draft, subtree, top_nodes,
)
from sufdec.suffix.draft import Draft

CPU = CostModel((1, 2, 4, 8, 16, 32, 64), (1.0, 1.1, 1.25, 1.5, 1.9, 2.6, 4.2))


def test_cost_interpolation_and_extrapolation():
    assert CPU.cost(1) == 1.0 and CPU.cost(0) == 1.0
    assert CPU.cost(8) == 1.5
    assert CPU.cost(12) == pytest.approx(1.7)
    assert CPU.cost(128) == pytest.approx(4.2 + (4.2 - 2.6) / 32 * 64)
    assert CostModel.flat().cost(200) == 1.0


def test_from_times_normalises_and_is_monotone():
    cm = CostModel.from_times([1, 2, 4], [0.010, 0.009, 0.02])
    assert cm.costs == (1.0, 1.0, 2.0)


def test_bad_cost_models_rejected():
    with pytest.raises(ValueError):
        CostModel((2, 4), (1.0, 2.0))
    with pytest.raises(ValueError):
        CostModel((1, 1), (1.0, 1.0))


def test_best_size():
    assert best_size([], CPU) == 0
    assert best_size([0.01, 0.01], CPU) == 0  # nothing likely: plain decoding
    assert best_size([0.95] * 40, CPU) > 16      # very likely chains pay for big forwards
    assert best_size([0.95] * 40, CPU, max_nodes=5) == 5
    assert best_size([0.9] * 64, CostModel.flat()) == 64  # free verification: take all
    # a medium case by hand: m=1 -> 1.5/1.1, m=2 -> 1.8/1.175, m=3 -> 1.9/1.25
    assert best_size([0.5, 0.3, 0.1], CPU) == 2


def test_top_nodes_ancestor_closed():
    d = Draft([1, 2, 3, 4], [-1, 0, -1, 1], [0.5, 0.4, 0.45, 0.3])
    assert top_nodes(d, 2) == [0, 2]
    assert top_nodes(d, 3) == [0, 1, 2]
    bad = Draft([1, 2], [-1, 0], [0.1, 0.9])  # child more probable than parent
    assert top_nodes(bad, 1) == [0]
    assert top_nodes(d, 4, max_depth=1) == [0, 2]


def test_subtree_reindexes():
    d = Draft([1, 2, 3, 4], [-1, 0, -1, 1], [0.5, 0.4, 0.45, 0.3], 1.65, 7)
    s = subtree(d, [0, 1, 3])
    assert s.token_ids == [1, 2, 4] and s.parents == [-1, 0, 1] and s.match_len == 7
    assert s.score == pytest.approx(1.2)


def test_size_draft_and_chain():
    d = Draft([1, 2, 3, 4, 5], [-1, 0, 1, -1, 3], [0.9, 0.8, 0.7, 0.05, 0.01])
    assert size_draft(d, None, max_nodes=10) is d
    assert size_draft(d, None, max_nodes=2).token_ids == [1, 2]
    cut = size_draft(d, CPU, max_nodes=10)
    assert cut.token_ids == [1, 2, 3]
    assert len(size_draft(Draft([7], [-1], [0.01]), CPU, 10)) == 0
    assert size_draft(d, None, max_nodes=10, max_depth=1).token_ids == [1, 4]
    assert best_chain(d).token_ids == [1, 2, 3] and best_chain(d).parents == [-1, 0, 1]
    assert len(best_chain(Draft())) == 0


def test_cut_below_eos():
    d = Draft([1, 2, 3, 4, 5], [-1, 0, 1, -1, 3], [0.9, 0.8, 0.7, 0.5, 0.4])
    assert cut_below(d, {9}) is d
    cut = cut_below(d, {2})
    assert cut.token_ids == [1, 2, 4, 5] and cut.parents == [-1, 0, -1, 2]


def test_cost_curve_fit_does_not_carry_one_slow_sample_upward():
    """A slow k=4 sample (busy machine) must not make k=8..32 look as costly as it and free after it."""
    from sufdec.drafters.budget import CostModel

    ks = (1, 2, 4, 8, 16, 32, 64)
    times = [1.0, 1.05, 2.70, 2.15, 2.17, 2.61, 3.53]
    cm = CostModel.from_times(ks, times)
    assert list(cm.costs) == sorted(cm.costs)  # non-decreasing
    assert cm.costs[0] == 1.0 and cm.costs[1] == 1.05
    assert abs(cm.costs[2] - (2.70 + 2.15 + 2.17) / 3) < 1e-9  # pooled, not 2.70 carried on
    assert cm.costs[5] == 2.61 and cm.costs[6] == 3.53
    clean = CostModel.from_times(ks, [1.0, 1.1, 1.6, 2.1, 2.2, 2.6, 3.5])
    assert clean.costs == (1.0, 1.1, 1.6, 2.1, 2.2, 2.6, 3.5)
