"""Draft sizing: cost curve interpolation, best size, ancestor-closed pruning."""

from __future__ import annotations

import pytest

from sufdec.drafters.sizing import (
    AcceptanceCalibration,
    CostModel,
    best_chain,
    best_size,
    cut_below,
    size_draft,
    subtree,
    top_nodes,
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
    assert best_size([0.95] * 40, CPU) > 16  # very likely chains pay for big forwards
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
    from sufdec.drafters.sizing import CostModel

    ks = (1, 2, 4, 8, 16, 32, 64)
    times = [1.0, 1.05, 2.70, 2.15, 2.17, 2.61, 3.53]
    cm = CostModel.from_times(ks, times)
    assert list(cm.costs) == sorted(cm.costs)  # non-decreasing
    assert cm.costs[0] == 1.0 and cm.costs[1] == 1.05
    assert abs(cm.costs[2] - (2.70 + 2.15 + 2.17) / 3) < 1e-9  # pooled, not 2.70 carried on
    assert cm.costs[5] == 2.61 and cm.costs[6] == 3.53
    clean = CostModel.from_times(ks, [1.0, 1.1, 1.6, 2.1, 2.2, 2.6, 3.5])
    assert clean.costs == (1.0, 1.1, 1.6, 2.1, 2.2, 2.6, 3.5)


# ---------------------------------------------------------------- acceptance calibration


def _tree() -> Draft:
    """root children a(0.9), b(0.5); a -> c(q 0.82) -> d(q 0.55); b -> e(q 0.3)."""
    probs = [0.9, 0.5, 0.9 * 0.82, 0.9 * 0.82 * 0.55, 0.5 * 0.3]
    return Draft([10, 20, 30, 40, 50], [-1, -1, 0, 2, 1], probs, sum(probs), 3)


def _cell(cal, depth, q):
    return next(
        (
            r
            for r in cal.table()
            if r["depth"][0] <= depth
            and (r["depth"][1] is None or depth <= r["depth"][1])
            and r["q"][0] <= q < r["q"][1]
        ),
        None,
    )


def test_calibration_labels_edges_given_a_right_parent():
    cal = AcceptanceCalibration()
    cal.record(_tree(), [10, 30])  # a, c right; d's depth (3) unknown; b wrong; e not counted
    assert _cell(cal, 1, 0.9)["seen"] == 1 and _cell(cal, 1, 0.9)["observed"] == 1.0  # a
    assert _cell(cal, 2, 0.82)["seen"] == 1 and _cell(cal, 2, 0.82)["observed"] == 1.0  # c
    assert _cell(cal, 1, 0.5)["seen"] == 1 and _cell(cal, 1, 0.5)["observed"] == 0.0  # b
    assert _cell(cal, 2, 0.3) is None  # e: parent wrong
    assert _cell(cal, 3, 0.55) is None  # d: unknown
    cal.record(_tree(), [20, 30, 40])  # a wrong (c, d not counted), b right, e wrong
    assert _cell(cal, 1, 0.9)["observed"] == 0.5 and _cell(cal, 1, 0.5)["observed"] == 0.5
    assert _cell(cal, 2, 0.3)["observed"] == 0.0 and _cell(cal, 2, 0.82)["seen"] == 1


def test_calibration_factors_follow_the_data_and_keep_paths_monotone():
    cal = AcceptanceCalibration()
    fresh = cal.apply(_tree())
    assert fresh.probs == pytest.approx(_tree().probs)  # nothing seen: the drafter's own q
    # depth 1 at q ~0.9 is right 10% of the time; deep edges at q ~0.6 always
    chain = Draft([1, 2, 3, 4, 5, 6], [-1, 0, 1, 2, 3, 4], [0.92 * 0.62**k for k in range(6)], 0.0, 6)
    for i in range(400):
        cal.record(chain, [1, 2, 3, 4, 5, 6] if i % 10 == 0 else [9])
        cal.record(chain, [1, 2, 3, 4, 5, 6])
    for depth in (1, 2, 4, 8):  # non-decreasing in q (seen cells)
        factors = [r["factor"] for r in cal.table() if r["depth"][0] == depth]
        assert factors == sorted(factors)
    out = cal.apply(chain)
    assert out.probs[0] == pytest.approx(0.55, abs=0.05)  # half the chains fail at the root
    assert out.probs[-1] > 0.5 > chain.probs[-1]  # deep edges are trusted: 0.92*0.62^5 = 0.08
    assert all(b <= a for a, b in zip(out.probs, out.probs[1:]))  # never increases down a path
    assert out.token_ids == chain.token_ids and out.score == pytest.approx(sum(out.probs))


def test_calibration_forgets_by_halving():
    cal = AcceptanceCalibration(max_count=100)
    for _ in range(150):
        cal.record(Draft([1], [-1], [0.92], 0.92, 1), [1])
    assert sum(r["seen"] for r in cal.table()) <= 100
    assert cal.apply(Draft([1], [-1], [0.92], 0.92, 1)).probs[0] > 0.9
