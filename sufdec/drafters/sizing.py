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


class AcceptanceCalibration:
    """Corrects a drafter's probabilities by the acceptance actually observed, edge by edge.

    A draft node's probability is a product along its path; its ratio to its parent's,
    ``q = p(node) / p(parent)``, is the drafter's estimate that the node is right given
    that its parent is. Those estimates are off in a way that depends on depth: in the
    Spider benchmark (docs/BENCHMARKS.md), edges the drafter scored 0.67 were right 42% of
    the time at depth 1 but 79-92% from depth 2 on (a match that has held so far keeps
    holding). So this keeps, per (q bin, depth bucket), how often a node whose parent was
    right was right itself, estimates ``(right + w * q) / (seen + w)`` (the drafter's own q
    as the prior, worth ``w`` observations; a cell with no observation yet passes q
    through), makes it non-decreasing in q within each depth bucket
    (pool-adjacent-violators), and gives each node the product of the corrected factors
    along its path. Products of factors <= 1 never increase from a parent to its child,
    so the top-m nodes stay ancestor-closed.

    Every drafted node is labelled, verified or not: once the true continuation is known
    (``record``), a node is right when its whole path matches it. All counts are halved
    when they pass ``max_count`` nodes, so the map follows a workload that changes.
    """

    Q_EDGES = (0.0, 0.2, 0.35, 0.5, 0.6, 0.67, 0.75, 0.8, 0.85, 0.9, 0.95, 0.98, 1.0)
    DEPTHS = (1, 2, 4, 8)  # bucket b holds depths DEPTHS[b] .. DEPTHS[b + 1] - 1; the last is open

    def __init__(self, prior_weight: float = 8.0, max_count: float = 50000.0) -> None:
        nq, nd = len(self.Q_EDGES) - 1, len(self.DEPTHS)
        self.prior_weight, self.max_count = prior_weight, max_count
        self.right = [[0.0] * nq for _ in range(nd)]
        self.seen = [[0.0] * nq for _ in range(nd)]
        self.qsum = [[0.0] * nq for _ in range(nd)]  # sum of the drafter's q, for the prior
        self._map: list[list[float | None]] | None = None

    def _qbin(self, q: float) -> int:
        return min(max(bisect.bisect_right(self.Q_EDGES, q) - 1, 0), len(self.Q_EDGES) - 2)

    def _dbin(self, depth: int) -> int:
        return bisect.bisect_right(self.DEPTHS, depth) - 1

    def mapping(self) -> list[list[float | None]]:
        """The corrected factor of each (depth bucket, q bin): non-decreasing in q over the
        cells seen; None for a cell never seen (``apply`` passes q through there)."""
        if self._map is None:
            w = self.prior_weight
            self._map = []
            for rights, seens, qsums in zip(self.right, self.seen, self.qsum):
                blocks: list[list] = []  # [value * weight, weight, cells]; cells never seen stay out
                for i, (r, n, qs) in enumerate(zip(rights, seens, qsums)):
                    if not n:
                        continue
                    blocks.append([r + w * qs / n, n + w, [i]])
                    while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
                        v, wt, cells = blocks.pop()
                        blocks[-1][0] += v
                        blocks[-1][1] += wt
                        blocks[-1][2] += cells
                row: list[float | None] = [None] * len(rights)
                for v, wt, cells in blocks:
                    for i in cells:
                        row[i] = min(1.0, v / wt)
                self._map.append(row)
        return self._map

    @staticmethod
    def _edges(draft: Draft) -> tuple[list[float], list[int]]:
        """Each node's q (probability ratio to its parent) and depth."""
        qs, depths = [], []
        for p, parent in zip(draft.probs, draft.parents):
            if parent < 0:
                qs.append(p)
                depths.append(1)
            else:
                pp = draft.probs[parent]
                qs.append(p / pp if pp > 0 else 0.0)
                depths.append(depths[parent] + 1)
        return qs, depths

    def apply(self, draft: Draft) -> Draft:
        """The same draft with each node's probability the product of corrected factors."""
        if len(draft) == 0:
            return draft
        m = self.mapping()
        qs, depths = self._edges(draft)
        probs: list[float] = []
        for q, d, parent in zip(qs, depths, draft.parents):
            f = m[self._dbin(d)][self._qbin(q)]
            if f is None:  # nothing seen there yet: the drafter's own q
                f = min(q, 1.0)
            probs.append(f if parent < 0 else probs[parent] * f)
        return Draft(draft.token_ids, draft.parents, probs, float(sum(probs)), draft.match_len)

    def factor(self, q: float, depth: int) -> float | None:
        """The corrected acceptance of one edge with the drafter's ratio ``q`` at ``depth``
        (None where nothing has been observed yet)."""
        return self.mapping()[self._dbin(depth)][self._qbin(q)]

    def record(self, draft: Draft, continuation: Sequence[int]) -> None:
        """Label each node of ``draft`` against the tokens that really followed its root.

        Nodes deeper than ``continuation`` are not counted (their outcome is unknown), nor
        nodes whose parent was wrong (the factor is conditional on the parent).
        """
        n_known = len(continuation)
        qs, depths = self._edges(draft)
        ok = [False] * len(draft)
        for i, (tok, parent) in enumerate(zip(draft.token_ids, draft.parents)):
            d = depths[i]
            if d > n_known or (parent >= 0 and not ok[parent]):
                continue
            good = continuation[d - 1] == tok
            ok[i] = good
            db, qb = self._dbin(d), self._qbin(qs[i])
            self.seen[db][qb] += 1.0
            self.qsum[db][qb] += qs[i]
            if good:
                self.right[db][qb] += 1.0
        if sum(map(sum, self.seen)) > self.max_count:
            for table in (self.seen, self.right, self.qsum):
                for row in table:
                    row[:] = [0.5 * c for c in row]
        self._map = None

    def table(self) -> list[dict]:
        """Per (depth bucket, q bin) with observations: nodes seen, observed rate, the factor used."""
        m = self.mapping()
        out = []
        for b, lo_d in enumerate(self.DEPTHS):
            hi_d = self.DEPTHS[b + 1] - 1 if b + 1 < len(self.DEPTHS) else None
            for i, (lo, hi) in enumerate(zip(self.Q_EDGES, self.Q_EDGES[1:])):
                n = self.seen[b][i]
                if n:
                    out.append(
                        {
                            "depth": [lo_d, hi_d],
                            "q": [lo, hi],
                            "seen": round(n, 1),
                            "observed": round(self.right[b][i] / n, 4),
                            "factor": round(m[b][i], 4),
                        }
                    )
        return out
