"""Drafting from both trees (speculate_both / draft_both) against a brute-force merge."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sufdec._core import SpecConfig, SuffixTree, speculate_both
from sufdec.drafters.settings import DraftSettings
from sufdec.suffix import RequestTree, SuffixIndex, draft_both, pick_best, to_draft
from tests.suffix.helpers import check_merged, examples
from tests.suffix.reference import RefTree, merged_candidates

FAST = settings(max_examples=examples(80), deadline=None, suppress_health_check=[HealthCheck.too_slow])

depths = st.sampled_from([1, 2, 3, 5, 64])
small_seq = st.lists(st.integers(0, 3), min_size=0, max_size=30)
seq_lists = st.lists(small_seq, min_size=0, max_size=6)
budgets = st.sampled_from([(32, 1000.0, 0.0), (3, 1000.0, 0.0), (8, 0.5, 1.0), (5, 2.0, -1.0), (0, 1000.0, 0.0)])


def build_global(D, seqs):
    t, r = SuffixTree(D), RefTree(D)
    for i, s in enumerate(seqs):
        t.append(i, s)
        r.append(i, s)
    return t, r


def build_request(D, seq, chunk):
    """A request tree holding seq as sequence 0, appended `chunk` tokens at a time."""
    t, r = SuffixTree(D), RefTree(D)
    t.append(0, seq[:chunk])
    for i in range(chunk, len(seq), chunk):
        t.append(0, seq[i : i + chunk])
    r.append(0, seq)
    return t, r


@FAST
@given(
    depths,
    seq_lists,
    small_seq,
    st.integers(1, 4),
    st.sampled_from(["both", "global", "request"]),
    st.sampled_from([0.0, 0.5, 2.0]),
    st.sampled_from([1, 2, 3, 6]),
    st.sampled_from([0.0, 0.05, 0.3]),
    budgets,
)
def test_merged_matches_reference(D, seqs, req_seq, chunk, trees, prior, max_sources, min_prob, budget_cfg):
    m_tok, fac, off = budget_cfg
    g, gref = build_global(D, seqs)
    r, rref = build_request(D, req_seq, chunk)
    matcher = g.matcher()
    for i in range(0, len(req_seq), chunk):
        matcher.feed(req_seq[i : i + chunk])
    use_g = trees in ("both", "global")
    use_r = trees in ("both", "request")
    cfg = SpecConfig(
        max_spec_tokens=m_tok,
        max_spec_factor=fac,
        max_spec_offset=off,
        min_token_prob=min_prob,
        mode="merged",
        prior=prior,
        max_sources=max_sources,
    )
    d = speculate_both(matcher if use_g else None, r if use_r else None, 0, cfg)
    L, cands = merged_candidates(
        gref.counts() if use_g else None, req_seq, rref.counts() if use_r else None, req_seq, D, prior, max_sources
    )
    check_merged(d, L, cands, m_tok, fac, off, min_prob)
    # keywords give the same draft as a SpecConfig
    d2 = speculate_both(
        matcher if use_g else None,
        r if use_r else None,
        0,
        max_spec_tokens=m_tok,
        max_spec_factor=fac,
        max_spec_offset=off,
        min_token_prob=min_prob,
        mode="merged",
        prior=prior,
        max_sources=max_sources,
    )
    assert (list(d2.token_ids), list(d2.parents), list(d2.probs)) == (list(d.token_ids), list(d.parents), list(d.probs))


@FAST
@given(
    depths,
    seq_lists,
    small_seq,
    small_seq,
    st.integers(1, 4),
    st.booleans(),
    st.sampled_from([0.0, 0.1]),
    st.sampled_from([(32, 4.0, 0.0), (3, 1.0, 0.0), (8, 0.5, 1.0)]),
)
def test_paper_mode_is_pick_best(D, seqs, prompt, out, chunk, use_tree, min_prob, budget_cfg):
    m_tok, fac, off = budget_cfg
    g, _ = build_global(D, seqs)
    ctx = prompt + out
    r, _ = build_request(D, ctx, chunk)
    matcher = g.matcher()
    matcher.feed(ctx)
    kw = dict(
        max_spec_tokens=m_tok, max_spec_factor=fac, max_spec_offset=off, min_token_prob=min_prob, use_tree=use_tree
    )
    want = pick_best(to_draft(matcher.speculate(**kw)), to_draft(r.speculate_tail(0, **kw)))
    got = to_draft(speculate_both(matcher, r, 0, **kw))
    assert got == want


@FAST
@given(seq_lists, small_seq, small_seq)
def test_python_entry_points(seqs, prompt, out):
    index = SuffixIndex(8)
    for i, s in enumerate(seqs):
        index.add(i, s)
    req = RequestTree(prompt, 8)
    req.extend(out)
    ctx = prompt + out
    m = index.matcher()
    m.feed(ctx)
    for params in (
        DraftSettings.preset("merged"),
        DraftSettings.preset("paper"),
        DraftSettings(max_spec_tokens=5, prior=1.0),
    ):
        d = draft_both(m, req, params)
        if params.mode == "paper":
            assert d == pick_best(index.speculate(ctx, params), req.speculate(params))
        # one tree alone
        assert draft_both(None, req, params) == req.speculate(params)
        assert draft_both(m, None, params) == index.speculate(ctx, params)
    assert draft_both(None, None, DraftSettings.preset("merged")) == to_draft(
        speculate_both(None, None, 0, DraftSettings.preset("merged").core)
    )


def test_merged_probs_never_grow_and_top_k_is_closed():
    rng_seqs = [[(i * 7 + j * 3) % 5 for j in range(40)] for i in range(30)]
    g, _ = build_global(16, rng_seqs)
    req, _ = build_request(16, rng_seqs[3][:25] + [1, 2, 3, 4, 0, 1, 2], 3)
    m = g.matcher()
    m.feed(req.sequence(0))
    d = speculate_both(
        m, req, 0, SpecConfig(max_spec_tokens=128, max_spec_factor=1000.0, min_token_prob=0.0, mode="merged")
    )
    assert len(d) > 10
    probs, parents = list(d.probs), list(d.parents)
    for i, p in enumerate(parents):
        if p >= 0:
            assert probs[i] <= probs[p]
    # any top-k by probability (ties broken by index) contains its nodes' parents
    order = sorted(range(len(probs)), key=lambda i: (-probs[i], i))
    for k in range(1, len(order) + 1):
        keep = set(order[:k])
        assert all(parents[i] < 0 or parents[i] in keep for i in keep)


def test_request_occurrence_not_counted_in_merged_mode():
    # request [5, 6, 5]: the tail "5" occurred once before, followed by 6
    req = RequestTree([5, 6, 5], 8)
    d = req.speculate(DraftSettings(prior=0.0, max_spec_tokens=1))
    assert list(d.token_ids) == [6] and d.probs == [1.0]
    # paper mode keeps the published denominators (the current occurrence counts)
    p = req.speculate(DraftSettings.preset("paper", max_spec_tokens=1))
    assert list(p.token_ids) == [6] and p.probs == [0.5]


def test_bad_inputs_raise():
    g = SuffixTree(8)
    g.append(0, [1, 2, 3])
    m = g.matcher()
    r = SuffixTree(8)
    r.append(0, [1, 2])
    with pytest.raises(ValueError):
        speculate_both(m, g, 0, mode="merged")  # one tree as both
    with pytest.raises(ValueError):
        speculate_both(m, r, 1, mode="merged")  # unknown request sequence
    with pytest.raises(ValueError):
        speculate_both(m, r, 0, mode="merged", use_tree=False)
    for bad in (
        dict(mode="fancy"),
        dict(prior=-1.0),
        dict(prior=float("nan")),
        dict(max_sources=0),
        dict(max_spec_tokens=-1),
        dict(min_token_prob=2.0),
    ):
        with pytest.raises(ValueError):
            SpecConfig(**bad)
        with pytest.raises(ValueError):
            speculate_both(m, r, 0, **bad)
    for bad in (
        dict(mode="fancy"),
        dict(spec=""),
        dict(sizing="some"),
        dict(max_spec_tokens=-1),
        dict(min_token_prob=2.0),
        dict(max_depth=0),
    ):
        with pytest.raises(ValueError):
            DraftSettings(**bad)
    cfg = SpecConfig(mode="merged", prior=0.25, max_sources=2)
    assert (cfg.mode, cfg.prior, cfg.max_sources, cfg.max_spec_tokens) == ("merged", 0.25, 2, 32)


def test_matcher_resyncs_after_mutation():
    g = SuffixTree(8)
    g.append(0, [1, 2, 3, 4])
    m = g.matcher()
    m.feed([1, 2])
    r = SuffixTree(8)
    r.append(0, [1, 2])
    cfg = SpecConfig(mode="merged", max_spec_factor=1000.0, min_token_prob=0.0, prior=0.0)
    assert list(speculate_both(m, r, 0, cfg).token_ids) == [3, 4]
    g.append(1, [1, 2, 9])
    g.remove(0)
    d = speculate_both(m, r, 0, cfg)
    assert list(d.token_ids) == [9]


def test_wide_budget_grows_path_table():
    import random

    rng = random.Random(3)
    seqs = [[rng.randrange(3) for _ in range(40)] for _ in range(40)]
    g, gref = build_global(12, seqs)
    req_seq = seqs[0][:20]
    r, rref = build_request(12, req_seq, 5)
    m = g.matcher()
    m.feed(req_seq)
    cfg = SpecConfig(max_spec_tokens=10**6, max_spec_factor=1e9, min_token_prob=0.0, mode="merged", max_sources=64)
    d = speculate_both(m, r, 0, cfg)
    L, cands = merged_candidates(gref.counts(), req_seq, rref.counts(), req_seq, 12, 0.5, 64)
    assert len(cands) > 2048  # more paths than the first table (4096 slots) holds at half load
    check_merged(d, L, cands, 10**6, 1e9, 0.0, 0.0)


# A skewed alphabet wide enough for nodes with more than 16 children (hashed kid lookup).
wide_tok = st.one_of(st.integers(0, 2), st.integers(0, 40))
wide_seqs = st.lists(st.lists(wide_tok, max_size=60), min_size=1, max_size=8)


@FAST
@given(st.sampled_from([2, 3, 64]), wide_seqs, st.lists(wide_tok, max_size=20), st.data())
def test_wide_alphabet_remove_then_merged(D, seqs, req_seq, data):
    g, gref = build_global(D, seqs)
    victims = data.draw(st.lists(st.sampled_from(range(len(seqs))), unique=True))
    m = g.matcher()
    m.feed(req_seq)
    for v in victims:
        g.remove(v)
        gref.remove(v)
    assert g.check_integrity() == ""
    r, rref = build_request(D, req_seq, 3)
    cfg = SpecConfig(max_spec_tokens=24, max_spec_factor=1000.0, min_token_prob=0.0, mode="merged")
    d = speculate_both(m, r, 0, cfg)
    L, cands = merged_candidates(gref.counts(), req_seq, rref.counts(), req_seq, D, 0.5, 3)
    check_merged(d, L, cands, 24, 1000.0, 0.0, 0.0)


def test_presets_and_overrides():
    assert DraftSettings() == DraftSettings.preset("merged")
    paper = DraftSettings.preset("paper", max_spec_tokens=8, min_token_prob=None)
    assert (paper.mode, paper.max_spec_factor, paper.min_token_prob, paper.max_spec_tokens) == ("paper", 4.0, 0.1, 8)
    # a chain in paper mode is the core's single-path drafting; merged mode always grows trees
    assert not paper.replace(single_path=True).use_tree and DraftSettings(single_path=True).use_tree
    with pytest.raises(ValueError):
        DraftSettings.preset("fast")
