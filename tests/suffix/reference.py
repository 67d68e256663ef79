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


# ---------------------------------------------------------------- merged drafting


def run_sources(lengths: list[int], counts: Counter, ctx: tuple, max_sources: int, minus: int):
    """(match length, effective count) of the deepest ``max_sources`` distinct-count runs.

    ``lengths`` are the match lengths (1..L, all occurring); of a run of equal counts the
    shortest length stands for it; runs whose count is not above ``minus`` are skipped.
    """
    out = []
    runs: list[list[int]] = []
    for ln in sorted(lengths, reverse=True):
        c = counts[ctx[-ln:]]
        if runs and runs[-1][1] == c:
            runs[-1][0] = ln
        else:
            runs.append([ln, c])
    for ln, c in runs:
        if len(out) == max_sources:
            break
        if c > minus:
            out.append((ln, c - minus))
    return out


def request_lengths(counts: Counter, seq, D: int) -> list[int]:
    """Tail lengths of a request sequence that occur elsewhere in it too (count >= 2)."""
    s = tuple(int(t) for t in seq)
    out = []
    for ln in range(1, min(len(s), D - 1) + 1):
        if counts.get(s[-ln:], 0) >= 2:
            out.append(ln)
        else:
            break
    return out


def kids_map(counts: Counter) -> dict:
    """path -> [(token, count)] of its one-token extensions."""
    out: dict[tuple, list] = {}
    for k, v in counts.items():
        out.setdefault(k[:-1], []).append((k[-1], v))
    return out


def source_paths(counts: Counter, base: tuple, n_eff: float, prior: float, D: int, kids=None) -> dict:
    """Every path x below ``base`` with P(x) = prod c_i / (n_{i-1} + prior), n_0 = n_eff."""
    kids = kids_map(counts) if kids is None else kids
    out: dict[tuple, float] = {}
    stack = [((), 1.0, float(n_eff))]
    while stack:
        x, prob, den = stack.pop()
        for tok, c in kids.get(base + x, ()):
            q = prob * c / (den + prior)
            out[x + (tok,)] = q
            stack.append((x + (tok,), q, float(c)))
    return out


def merged_candidates(g_counts, ctx, r_counts, r_seq, D, prior, max_sources):
    """(budget match length, {path: merged probability}) of the merged drafter, untruncated.

    ``g_counts`` is None without a global tree, ``r_counts`` None without a request tree.
    """
    probs: dict[tuple, float] = {}
    L = 0
    srcs = []
    if g_counts is not None:
        c = tuple(int(t) for t in ctx)
        lens = match_lengths(g_counts, c, D)
        L = max(L, len(lens))
        for ln, n in run_sources(lens, g_counts, c, max_sources, 0):
            srcs.append((g_counts, c[-ln:], n))
    if r_counts is not None:
        s = tuple(int(t) for t in r_seq)
        lens = request_lengths(r_counts, s, D)
        L = max(L, len(lens))
        for ln, n in run_sources(lens, r_counts, s, max_sources, 1):
            srcs.append((r_counts, s[-ln:], n))
    kids = {}
    for counts, base, n in srcs:
        if id(counts) not in kids:
            kids[id(counts)] = kids_map(counts)
        km = kids[id(counts)]
        for x, q in source_paths(counts, base, n, prior, D, km).items():
            if q > probs.get(x, 0.0):
                probs[x] = q
    return L, probs
