"""Tree layout: a Draft plus the pending root token become one verification forward.

Rows of the forward: row 0 is the root (the last verified token, not yet in the KV cache),
row ``i + 1`` is draft node ``i``. Parents precede children in a Draft, so every row's
ancestors have smaller row numbers and an accepted path is an increasing list of rows,
which is what KV compaction relies on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from sufdec.suffix.draft import Draft


@dataclass(frozen=True)
class TreeLayout:
    """Everything the verification forward and the acceptance walk need about a tree."""

    past_len: int  # P: tokens already in the KV cache
    tokens: list[int]  # per row: token id (row 0 = root)
    parents: list[int]  # per row: parent row (-1 for the root)
    depths: list[int]  # per row: depth (root 0)
    children: list[dict[int, int]]  # per row: child token -> child row (first wins)
    tree_mask: np.ndarray  # [q, q] bool: row i sees row j (ancestor or self)

    @property
    def q(self) -> int:
        return len(self.tokens)

    def input_ids(self, device: torch.device | str | None = None) -> torch.Tensor:
        return torch.tensor([self.tokens], dtype=torch.long, device=device)  # [1, q]

    def position_ids(self, device: torch.device | str | None = None) -> torch.Tensor:
        pos = [self.past_len + d for d in self.depths]
        return torch.tensor([pos], dtype=torch.long, device=device)  # [1, q]

    def attention_mask(
        self,
        *,
        kv_offset: int = 0,
        sliding_window: int | None = None,
        dtype: torch.dtype = torch.bool,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """The 4D mask ``[1, 1, q, (P - kv_offset) + q]`` for a layer whose cached keys
        start at absolute position ``kv_offset`` (sliding-window layers drop old keys).

        Each row sees every cached key, its ancestors and itself; with ``sliding_window``
        W a key is visible only when ``pos(query) - pos(key) < W`` (transformers' rule).
        ``dtype=torch.bool`` gives True = attend (sdpa); a float dtype gives an additive
        mask of 0 / finfo.min (eager adds the mask to the scores).
        """
        q, past = self.q, self.past_len - kv_offset
        mask = np.ones((q, past + q), dtype=bool)
        mask[:, past:] = self.tree_mask
        if sliding_window is not None:
            qpos = self.past_len + np.asarray(self.depths)  # [q]
            kpos = np.concatenate([np.arange(kv_offset, self.past_len), qpos])  # [past + q]
            mask &= (qpos[:, None] - kpos[None, :]) < sliding_window
        out = torch.from_numpy(mask).to(device)[None, None]  # [1, 1, q, past + q]
        if dtype == torch.bool:
            return out
        zero = torch.zeros((), dtype=dtype, device=device)
        neg = torch.tensor(torch.finfo(dtype).min, dtype=dtype, device=device)
        return torch.where(out, zero, neg)


def layout_tree(draft: Draft, root_token: int, past_len: int) -> TreeLayout:
    """Lay out ``draft`` behind ``root_token`` for a cache already holding ``past_len`` tokens."""
    n = len(draft)
    q = n + 1
    tokens = [int(root_token)] + [int(t) for t in draft.token_ids]
    parents = [-1] + [p + 1 for p in draft.parents]  # node parent -1 -> root row 0
    depths = [0] * q
    children: list[dict[int, int]] = [{} for _ in range(q)]
    anc = np.zeros((q, q), dtype=bool)
    anc[0, 0] = True
    for r in range(1, q):
        p = parents[r]
        if not 0 <= p < r:
            raise ValueError(f"draft node {r - 1} has parent {p - 1}: parents must precede children")
        depths[r] = depths[p] + 1
        children[p].setdefault(tokens[r], r)
        anc[r] = anc[p]
        anc[r, r] = True
    return TreeLayout(past_len, tokens, parents, depths, children, anc)


def layer_masks(
    layout: TreeLayout, kinds: dict[str, int | None], dtype: torch.dtype, device: torch.device
) -> torch.Tensor | dict[str, torch.Tensor]:
    """The 4D mask of each kind of layer (``kinds``: layer type -> sliding window or None,
    see ``kv.mask_kinds``): one tensor when all layers are alike, else a dict keyed by
    layer type, as transformers takes masks for models that mix sliding and full layers."""
    masks = {
        name: layout.attention_mask(
            kv_offset=0 if window is None else max(layout.past_len - window + 1, 0),
            sliding_window=window,
            dtype=dtype,
            device=device,
        )
        for name, window in kinds.items()
    }
    if len(masks) == 1:
        return next(iter(masks.values()))
    return masks
