"""Brute-force pure-Python model of the suffix tree, for tests."""

from __future__ import annotations

import heapq
import math
from collections import Counter


class RefTree:
    def __init__(self, max_depth: int) -> None:
        self.D = max_depth
        self.seqs: dict[int, list[int]] = {}

    def append(self, seq_id: int, tokens) -> None:
        self.seqs.setdefault(seq_id, []).extend(int(t) for t in tokens)

    def remove(self, seq_id: int) -> None:
        del self.seqs[seq_id]

    def counts(self) -> Counter:
        c: Counter = Counter()
        for s in self.seqs.values():
            n = len(s)
            for i in range(n):
                for ln in range(1, min(self.D, n - i) + 1):
                    c[tuple(s[i : i + ln])] += 1
        return c

    def num_tokens(self) -> int:
        return sum(len(s) for s in self.seqs.values())


def children(counts: Counter, path: tuple) -> list[tuple[int, int]]:
    """(token, count) of every one-token extension of path, any order."""
    return [(k[-1], v) for k, v in counts.items() if len(k) == len(path) + 1 and k[:-1] == path]


def budget(match_len: int, max_spec_tokens: int, factor: float, offset: float) -> int:
    raw = math.floor(factor * match_len + offset)
    return max(0, min(max_spec_tokens, raw))


def match_lengths(counts: Counter, context, D: int) -> list[int]:
    ctx = tuple(int(t) for t in context)
    out = []
    for ln in range(1, min(len(ctx), D - 1) + 1):
        if counts.get(ctx[-ln:], 0) > 0:
            out.append(ln)
        else:
            break
    return out


def tree_probs(counts: Counter, path: tuple, n: int, min_prob: float) -> list[float]:
    """Probabilities of the top-n best-first expansion (unique as a multiset)."""
    total = counts[path] if path else None
    heap: list[tuple[float, tuple]] = []

    def push(p: tuple, prob: float) -> None:
        denom = counts[p]
        for tok, c in children(counts, p):
            q = prob * c / denom
            if q >= min_prob:
                heapq.heappush(heap, (-q, p + (tok,)))

    assert total is not None
    push(path, 1.0)
    out = []
    while heap and len(out) < n:
        q, p = heapq.heappop(heap)
        out.append(-q)
        push(p, -q)
    return out


def path_scores(counts: Counter, path: tuple, n: int, min_prob: float) -> set:
    """All scores a greedy (most frequent child) path can reach, over tie-breaks."""
    results = set()

    def walk(p: tuple, prob: float, acc: float, k: int) -> None:
        if k == n:
            results.add(round(acc, 9))
            return
        kids = children(counts, p)
        if not kids:
            results.add(round(acc, 9))
            return
        best = max(c for _, c in kids)
        q = prob * best / counts[p]
        if q < min_prob:
            results.add(round(acc, 9))
            return
        for tok, c in kids:
            if c == best:
                walk(p + (tok,), q, acc + q, k + 1)

    walk(path, 1.0, 0.0, 0)
    return results
