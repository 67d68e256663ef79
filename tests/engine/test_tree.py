"""Tree layout on hand-drawn trees: ids, positions, masks, children."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sufdec.engine.tree import layout_tree
from sufdec.suffix.draft import Draft

#        root(9)
#        /     \
#     a(10)    b(11)
#     /   \
#   c(12) d(13)
#    |
#   e(14)
TREE = Draft([10, 11, 12, 13, 14], [-1, -1, 0, 0, 2], [0.9, 0.5, 0.6, 0.3, 0.5], 2.8, 3)
TREE_MASK = np.array(
    [
        # r  a  b  c  d  e
        [1, 0, 0, 0, 0, 0],  # root
        [1, 1, 0, 0, 0, 0],  # a
        [1, 0, 1, 0, 0, 0],  # b
        [1, 1, 0, 1, 0, 0],  # c
        [1, 1, 0, 0, 1, 0],  # d
        [1, 1, 0, 1, 0, 1],  # e
    ],
    dtype=bool,
)


def test_ids_positions_children():
    lay = layout_tree(TREE, 9, past_len=7)
    assert lay.q == 6
    assert lay.input_ids().tolist() == [[9, 10, 11, 12, 13, 14]]
    assert lay.position_ids().tolist() == [[7, 8, 8, 9, 9, 10]]
    assert lay.depths == [0, 1, 1, 2, 2, 3]
    assert lay.parents == [-1, 0, 0, 1, 1, 3]
    assert lay.children == [{10: 1, 11: 2}, {12: 3, 13: 4}, {}, {14: 5}, {}, {}]


def test_full_mask_bool():
    lay = layout_tree(TREE, 9, past_len=3)
    m = lay.attention_mask()
    assert m.shape == (1, 1, 6, 9) and m.dtype == torch.bool
    assert m[0, 0, :, :3].all()  # every row sees the whole prefix
    assert np.array_equal(m[0, 0, :, 3:].numpy(), TREE_MASK)
    assert np.array_equal(lay.tree_mask, TREE_MASK)


def test_eager_mask_is_additive():
    lay = layout_tree(TREE, 9, past_len=2)
    m = lay.attention_mask(dtype=torch.float32)
    assert m.dtype == torch.float32 and m.shape == (1, 1, 6, 8)
    neg = torch.finfo(torch.float32).min
    expect = torch.where(lay.attention_mask(), torch.tensor(0.0), torch.tensor(neg))
    assert torch.equal(m, expect)
    assert set(m.unique().tolist()) == {0.0, neg}


def test_sliding_window_mask():
    # P=5, W=3: the layer keeps keys at positions 3 and 4 (kv_offset 3)
    lay = layout_tree(TREE, 9, past_len=5)
    m = lay.attention_mask(kv_offset=3, sliding_window=3)[0, 0].numpy()
    assert m.shape == (6, 2 + 6)
    # query positions: root 5, a/b 6, c/d 7, e 8; key positions: 3, 4, then 5 6 6 7 7 8
    assert m[0].tolist() == [1, 1, 1, 0, 0, 0, 0, 0]
    assert m[1].tolist() == [0, 1, 1, 1, 0, 0, 0, 0]  # a at 6 no longer sees position 3
    assert m[3].tolist() == [0, 0, 1, 1, 0, 1, 0, 0]  # c at 7: root 5, a 6, itself
    assert m[5].tolist() == [0, 0, 0, 1, 0, 1, 0, 1]  # e at 8: root falls out of the window


def test_chain_and_empty():
    lay = layout_tree(Draft.chain([4, 5, 6]), 3, past_len=0)
    assert lay.parents == [-1, 0, 1, 2] and lay.position_ids().tolist() == [[0, 1, 2, 3]]
    assert np.array_equal(lay.tree_mask, np.tril(np.ones((4, 4), dtype=bool)))
    assert lay.children == [{4: 1}, {5: 2}, {6: 3}, {}]
    empty = layout_tree(Draft(), 3, past_len=10)
    assert empty.q == 1 and empty.attention_mask().shape == (1, 1, 1, 11) and empty.attention_mask().all()


def test_duplicate_sibling_first_wins_and_bad_parents():
    lay = layout_tree(Draft([5, 5, 6], [-1, -1, 1], [1, 1, 1]), 0, past_len=0)
    assert lay.children[0] == {5: 1}
    with pytest.raises(ValueError):
        layout_tree(Draft([5, 6], [1, -1], [1, 1]), 0, past_len=0)
