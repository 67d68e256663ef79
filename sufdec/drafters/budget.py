"""Cost-aware draft sizing: how many drafted nodes are worth verifying.

Verifying k new tokens in one forward costs ``cost(k)`` (relative to one token: flat on a
big GPU, ~1.5x at k=8 and ~2.6x at k=32 for a small model on a CPU). A step over the top-m
nodes of a draft yields ``1 + sum(top-m probs)`` tokens in expectation (the bonus token plus
each node's estimated acceptance), so we pick the m maximising tokens per unit cost,
m = 0 (plain decoding) included. No torch here: the engine measures the curve
(``sufdec.engine.calibrate``) and hands a ``CostModel`` over.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Sequence

from sufdec.suffix.draft import Draft


@dataclass(frozen=True)
class CostModel:
    """Relative cost of one forward over ``k`` new tokens, ``cost(1) == 1``.

    ``ks`` ascending, starting at 1; between points the cost is interpolated linearly,
    beyond the last point it grows with the last segment's slope.
    """

    ks: tuple[int, ...] = (1,)
    costs: tuple[float, ...] = (1.0,)

    def __post_init__(self) -> None:
        if len(self.ks) != len(self.costs) or not self.ks or self.ks[0] != 1:
            raise ValueError("CostModel needs matching ks/costs starting at k=1")
        if any(b <= a for a, b in zip(self.ks, self.ks[1:])):
            raise ValueError("CostModel ks must be strictly increasing")

    @staticmethod
    def from_times(ks: Sequence[int], seconds: Sequence[float]) -> "CostModel":
        """Normalise measured forward times by the k=1 time, made non-decreasing.

        The monotone fit pools adjacent violators (isotonic regression) rather than taking
        a running maximum: one slow measurement at a small k (a busy machine) then only
        averages with its neighbours instead of lifting every larger k to its height,
        which would make the drafts beyond it look free.
        """
        base = seconds[0]
        blocks: list[list[float]] = []  # [sum, count] of pooled ratios
        for s in seconds:
            blocks.append([s / base, 1.0])
            while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
                total, count = blocks.pop()
                blocks[-1][0] += total
                blocks[-1][1] += count
        costs: list[float] = []
        for total, count in blocks:
            costs += [max(1.0, total / count)] * int(count)
        costs[0] = 1.0
        return CostModel(tuple(int(k) for k in ks), tuple(costs))

    @staticmethod
    def flat() -> "CostModel":
        """Every k costs the same as one token (a GPU far from its compute bound)."""
        return CostModel((1, 2), (1.0, 1.0))

    def cost(self, k: int) -> float:
        ks, cs = self.ks, self.costs
        if k <= 1:
            return 1.0
        if len(ks) == 1:
            return 1.0
        i = bisect.bisect_left(ks, k)
        if i < len(ks) and ks[i] == k:
            return cs[i]
        if i >= len(ks):  # extrapolate with the last slope
            slope = (cs[-1] - cs[-2]) / (ks[-1] - ks[-2])
            return cs[-1] + slope * (k - ks[-1])
        k0, k1, c0, c1 = ks[i - 1], ks[i], cs[i - 1], cs[i]
        return c0 + (c1 - c0) * (k - k0) / (k1 - k0)


def best_size(sorted_probs: Sequence[float], cost: CostModel, max_nodes: int | None = None) -> int:
    """The m maximising ``(1 + sum(sorted_probs[:m])) / cost(1 + m)``; 0 when nothing pays.

    ``sorted_probs`` must be in descending order (the top-m are then the first m).
    """
    limit = len(sorted_probs) if max_nodes is None else min(max_nodes, len(sorted_probs))
    best_m, best_rate, gain = 0, 1.0, 1.0
    for m in range(1, limit + 1):
        gain += sorted_probs[m - 1]
        rate = gain / cost.cost(1 + m)
        if rate > best_rate * (1.0 + 1e-9):
            best_m, best_rate = m, rate
    return best_m


def top_nodes(draft: Draft, m: int, max_depth: int | None = None) -> list[int]:
    """Indices (ascending) of the m most probable nodes whose ancestors are all kept.

    Ties go to the earlier node, so with probs non-increasing along paths the result is
    the plain top-m; a node whose parent was not kept (a drafter breaking that rule, or
    one below ``max_depth``) is skipped, keeping the set ancestor-closed.
    """
    n = len(draft)
    if m <= 0 or n == 0:
        return []
    depths = draft.depths() if max_depth is not None else None
    order = sorted(range(n), key=lambda i: (-draft.probs[i], i)) if m < n else range(n)
    kept: set[int] = set()
    for i in order:
        p = draft.parents[i]
        if (p < 0 or p in kept) and (depths is None or depths[i] <= max_depth):
            kept.add(i)
            if len(kept) == m:
                break
    return sorted(kept)


def subtree(draft: Draft, keep: Sequence[int]) -> Draft:
    """The draft restricted to the ancestor-closed node set ``keep`` (ascending), reindexed."""
    if len(keep) == len(draft):
        return draft
    remap = {old: new for new, old in enumerate(keep)}
    tokens = [draft.token_ids[i] for i in keep]
    parents = [remap[draft.parents[i]] if draft.parents[i] >= 0 else -1 for i in keep]
    probs = [draft.probs[i] for i in keep]
    return Draft(tokens, parents, probs, float(sum(probs)), draft.match_len)


def best_chain(draft: Draft) -> Draft:
    """The single path that follows the most probable child from the root down."""
    children: dict[int, list[int]] = {}
    for i, p in enumerate(draft.parents):
        children.setdefault(p, []).append(i)
    path, node = [], -1
    while node in children:
        node = max(children[node], key=lambda c: (draft.probs[c], -c))
        path.append(node)
    return subtree(draft, path)


def size_draft(
    draft: Draft,
    cost: CostModel | None,
    max_nodes: int,
    max_depth: int | None = None,
) -> Draft:
    """Cut ``draft`` to the node count that maximises expected tokens per unit of cost.

    ``cost=None`` keeps the first ``max_nodes`` nodes by probability (no cost model);
    ``max_depth`` drops nodes deeper than the tokens still allowed in this request.
    """
    n = len(draft)
    if n == 0 or max_nodes <= 0:
        return Draft(match_len=draft.match_len)
    if cost is None:
        m = min(n, max_nodes)
    else:
        m = best_size(sorted(draft.probs, reverse=True), cost, max_nodes)
    if m == n and max_depth is None:
        return draft
    return subtree(draft, top_nodes(draft, m, max_depth))


def cut_below(draft: Draft, final_tokens: frozenset[int] | set[int]) -> Draft:
    """Drop the descendants of nodes whose token ends generation (EOS): never emitted."""
    if not final_tokens or not any(t in final_tokens for t in draft.token_ids):
        return draft
    dead = [False] * len(draft)
    keep = []
    for i, (t, p) in enumerate(zip(draft.token_ids, draft.parents)):
        if p >= 0 and (dead[p] or draft.token_ids[p] in final_tokens):
            dead[i] = True
        else:
            keep.append(i)
    return subtree(draft, keep)
