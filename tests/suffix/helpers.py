"""Shared checks of core results against the brute-force reference."""

from __future__ import annotations

import os
from collections import Counter

from tests.suffix.reference import budget, match_lengths, path_scores, tree_probs


def examples(n: int) -> int:
    """Hypothesis examples per test: n, or SUFDEC_FUZZ_EXAMPLES when set (long fuzz runs)."""
    return int(os.environ.get("SUFDEC_FUZZ_EXAMPLES") or n)


def enumerate_tree(tree) -> dict[tuple, int]:
    """Every path (as a token tuple) with its count, read back from the core."""
    out: dict[tuple, int] = {}
    entries = tree.continuations([], tree.max_depth, 1 << 30)
    paths: list[tuple] = []
    for parent, tok, cnt in entries:
        p = (paths[parent] if parent >= 0 else ()) + (tok,)
        paths.append(p)
        out[p] = cnt
    return out


def assert_counts(tree, ref) -> None:
    expect = {k: v for k, v in ref.counts().items()}
    got = enumerate_tree(tree)
    assert got == expect
    assert tree.num_tokens == ref.num_tokens()
    assert tree.num_sequences == len(ref.seqs)


def check_draft_valid(draft, counts: Counter, context, D: int, min_prob: float, n_budget: int) -> None:
    """The draft is a well-formed tree whose probs are the count ratios from the match."""
    ctx = tuple(int(t) for t in context)
    m = draft.match_len
    assert len(draft.token_ids) == len(draft.parents) == len(draft.probs)
    assert len(draft.token_ids) <= n_budget
    base = ctx[-m:] if m else ()
    paths: list[tuple] = []
    pprob: list[float] = []
    for i, (tok, par, prob) in enumerate(zip(draft.token_ids, draft.parents, draft.probs)):
        assert -1 <= par < i
        parent_path = paths[par] if par >= 0 else base
        parent_prob = pprob[par] if par >= 0 else 1.0
        p = parent_path + (tok,)
        assert counts.get(p, 0) > 0, "drafted path does not occur"
        expect = parent_prob * counts[p] / counts[parent_path]
        assert abs(prob - expect) < 1e-9
        assert prob >= min_prob - 1e-12
        paths.append(p)
        pprob.append(prob)
    assert len(set(paths)) == len(paths), "duplicate node in draft"
    assert abs(draft.score - sum(draft.probs)) < 1e-9


def check_speculate(
    tree, ref, context, *, max_spec_tokens=32, factor=4.0, offset=0.0, min_prob=0.1, use_tree=True, draft=None
) -> None:
    counts = ref.counts()
    D = ref.D
    if draft is None:
        draft = tree.speculate(
            context,
            max_spec_tokens=max_spec_tokens,
            max_spec_factor=factor,
            max_spec_offset=offset,
            min_token_prob=min_prob,
            use_tree=use_tree,
        )
    lens = match_lengths(counts, context, D)
    if draft.match_len == 0:
        assert len(draft.token_ids) == 0 and draft.score == 0
    else:
        assert draft.match_len in lens
    n_b = budget(draft.match_len, max_spec_tokens, factor, offset)
    check_draft_valid(draft, counts, context, D, min_prob, n_b)
    ctx = tuple(int(t) for t in context)
    if use_tree:
        best = 0.0
        scores = {}
        for ln in lens:
            b = budget(ln, max_spec_tokens, factor, offset)
            probs = tree_probs(counts, ctx[-ln:], b, min_prob) if b > 0 else []
            scores[ln] = sum(probs)
            best = max(best, scores[ln])
        assert abs(draft.score - best) < 1e-9
        if draft.match_len:
            ref_probs = sorted(tree_probs(counts, ctx[-draft.match_len :], n_b, min_prob))
            assert len(ref_probs) == len(draft.probs)
            for a, b in zip(ref_probs, sorted(draft.probs)):
                assert abs(a - b) < 1e-9
            # ties go to the longer match
            longer = [ln for ln in lens if ln > draft.match_len and scores[ln] >= draft.score - 1e-12]
            assert all(abs(scores[ln] - draft.score) < 1e-9 for ln in longer)
    else:
        # path mode: a valid greedy path, and no match length could do clearly better
        hi = 0.0
        for ln in lens:
            b = budget(ln, max_spec_tokens, factor, offset)
            if b > 0:
                hi = max(hi, min(path_scores(counts, ctx[-ln:], b, min_prob)))
        assert draft.score >= hi - 1e-9
        if draft.match_len:
            assert round(draft.score, 9) in {
                round(s, 9) for s in path_scores(counts, ctx[-draft.match_len :], n_b, min_prob)
            } or any(abs(draft.score - s) < 1e-8 for s in path_scores(counts, ctx[-draft.match_len :], n_b, min_prob))
            for i in range(len(draft.token_ids)):
                assert draft.parents[i] == i - 1


def check_merged(draft, L, cands, max_spec_tokens, factor, offset, min_prob):
    """The draft is the top-budget set of the merged candidates, as a well-formed tree."""
    n_budget = budget(L, max_spec_tokens, factor, offset)
    assert draft.match_len == L
    eligible = sorted((q for q in cands.values() if q >= min_prob), reverse=True)
    n = min(n_budget, len(eligible))
    tokens, parents, probs = list(draft.token_ids), list(draft.parents), list(draft.probs)
    assert len(tokens) == len(parents) == len(probs) == n
    paths: list[tuple] = []
    for i, (tok, par, prob) in enumerate(zip(tokens, parents, probs)):
        assert -1 <= par < i
        path = (paths[par] if par >= 0 else ()) + (tok,)
        assert path in cands, "drafted path has no source"
        assert abs(prob - cands[path]) < 1e-9
        if par >= 0:
            assert prob <= probs[par], "probability grows from parent to child"
        paths.append(path)
    assert len(set(paths)) == len(paths), "duplicate path"
    for got, want in zip(sorted(probs, reverse=True), eligible[:n]):
        assert abs(got - want) < 1e-9
    assert abs(draft.score - sum(probs)) < 1e-9
