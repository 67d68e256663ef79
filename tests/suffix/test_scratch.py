"""Drafting from scratch (``SuffixIndex.speculate``) against a matcher fed token by token.

The from-scratch path finds the longest matching suffix first and locates only the match
lengths drafting tries; the matcher pushes every match point through the whole context.
Both must draft exactly the same tree (tokens, parents, probabilities, score, match
length), in paper and merged mode, on random and on repetitive corpora.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sufdec._core import SpecConfig, SuffixTree, speculate_both
from sufdec.drafters.settings import DraftSettings
from sufdec.suffix import SuffixIndex
from tests.suffix.helpers import examples

FAST = settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])

SETTINGS = [
    DraftSettings.preset("paper"),
    DraftSettings.preset("paper", spec="chain"),
    DraftSettings.preset("paper", max_spec_factor=1.0, max_spec_offset=2.0, min_token_prob=0.0),
    DraftSettings.preset("merged"),
    DraftSettings(mode="merged", max_spec_tokens=8, max_spec_factor=2.0, prior=0.0, max_sources=1),
    DraftSettings(mode="merged", max_spec_tokens=64, max_spec_factor=1000.0, min_token_prob=0.0, max_sources=6),
]


def key(d):
    return (list(d.token_ids), list(d.parents), list(d.probs), d.score, d.match_len)


def by_matcher(index: SuffixIndex, context, ds: DraftSettings):
    """What the matcher drafts after being fed the context one token at a time."""
    m = index.matcher()
    for tok in context:
        m.feed([int(tok)])
    return m, speculate_both(m, None, 0, ds.core)


def longest_suffix(seqs, context, D: int) -> int:
    """Brute force: the longest suffix (at most D - 1 tokens) occurring in some sequence."""
    text = [tuple(int(t) for t in s) for s in seqs]
    ctx = tuple(int(t) for t in context)
    best = 0
    for ln in range(1, min(len(ctx), D - 1) + 1):
        suf = ctx[len(ctx) - ln :]
        if not any(s[i : i + ln] == suf for s in text for i in range(len(s) - ln + 1)):
            break
        best = ln
    return best


def check(index: SuffixIndex, seqs, context, D: int) -> None:
    want_len = longest_suffix(seqs, context, D)
    for ds in SETTINGS:
        m, expect = by_matcher(index, context, ds)
        got = index.tree.speculate(context, ds.core)
        assert key(got) == key(expect), (ds, list(context))
        assert key(m.speculate(ds.core)) == key(expect)  # the matcher's config form
        assert m.match_len == want_len
        if ds.mode == "merged":
            assert got.match_len == want_len
        draft = index.speculate(context, ds)
        assert (draft.token_ids, draft.parents, draft.probs) == (
            list(got.token_ids),
            list(got.parents),
            list(got.probs),
        )
        if ds.mode == "paper":  # the keyword form of the call drafts the same
            assert key(index.tree.speculate(context, **ds.core_kwargs())) == key(got)


def build(D: int, seqs) -> SuffixIndex:
    index = SuffixIndex(D)
    for i, s in enumerate(seqs):
        index.add(i, s)
    return index


@FAST
@given(
    st.sampled_from([1, 2, 3, 4, 8, 64]),
    st.lists(st.lists(st.integers(0, 3), max_size=40), max_size=6),
    st.lists(st.integers(0, 3), max_size=70),
)
def test_random_small_alphabet(D, seqs, context):
    check(build(D, seqs), seqs, context, D)


@FAST
@given(st.sampled_from([2, 5, 16, 64]), st.integers(1, 6), st.integers(1, 40), st.integers(0, 3), st.data())
def test_repetitive(D, period, reps, noise, data):
    """Periodic text and copies of it: long matches, long equal-count runs."""
    unit = data.draw(st.lists(st.integers(0, 5), min_size=period, max_size=period))
    seqs = [unit * reps, unit * (reps // 2 + 1) + [9] + unit * 3, [7] * reps]
    ctx = (unit * (reps + 2))[: data.draw(st.integers(0, 80))]
    for _ in range(noise):  # a few edits so the match stops inside the context
        if ctx:
            ctx[data.draw(st.integers(0, len(ctx) - 1))] = data.draw(st.integers(0, 9))
    check(build(D, seqs), seqs, ctx, D)


@pytest.mark.parametrize("seed", range(4))
def test_numpy_corpus_deep_matches(seed):
    """Contexts cut out of stored text, some with a changed token: matches of every length."""
    rng = np.random.default_rng(seed)
    D = 64
    phrases = [rng.integers(0, 50, size=int(rng.integers(3, 30))) for _ in range(30)]
    seqs = []
    for _ in range(40):
        parts = [
            phrases[int(rng.integers(len(phrases)))] if rng.random() < 0.6 else rng.integers(0, 200, size=5)
            for _ in range(int(rng.integers(2, 12)))
        ]
        seqs.append(np.concatenate(parts).astype(np.int64))
    index = build(D, seqs)
    for _ in range(60):
        s = seqs[int(rng.integers(len(seqs)))]
        end = int(rng.integers(1, len(s) + 1))
        ctx = s[max(0, end - int(rng.integers(1, 90))) : end].copy()
        if rng.random() < 0.5 and len(ctx) > 1:
            ctx[int(rng.integers(len(ctx)))] = int(rng.integers(0, 300))
        check(index, seqs, ctx, D)
    # after removals the tree is reshaped (merged nodes, re-pointed labels)
    for sid in range(0, 40, 3):
        index.remove(sid)
    alive = [s for i, s in enumerate(seqs) if i % 3]
    for _ in range(30):
        s = alive[int(rng.integers(len(alive)))]
        end = int(rng.integers(1, len(s) + 1))
        check(index, alive, s[max(0, end - 70) : end], D)


def test_high_fanout_and_empty():
    """Hashed child lookups on the way down; contexts that match nothing or are empty."""
    D = 8
    seqs = [[i, i + 1, i + 2, 0, i] for i in range(100)] + [list(range(60))]
    index = build(D, seqs)
    for ctx in ([], [10**6], [5, 6], list(range(20, 40)), [1, 2, 3, 0, 1], [99, 100, 101, 0]):
        check(index, seqs, ctx, D)


def test_paper_chain_and_merged_chain():
    """Paper-mode chains go through the config form too; merged mode only drafts trees."""
    t = SuffixTree(8)
    t.append(0, [1, 2, 3, 1, 2, 4])
    chain = t.speculate([1, 2], DraftSettings(mode="paper", single_path=True).core)
    assert key(chain) == key(t.speculate([1, 2], use_tree=False))
    assert list(chain.parents) == list(range(-1, len(chain) - 1))
    with pytest.raises(ValueError):
        t.speculate([1, 2], SpecConfig(mode="merged", use_tree=False))
    with pytest.raises(ValueError):
        t.matcher().speculate(SpecConfig(mode="merged", use_tree=False))


def test_memory_breakdown_sums():
    t = SuffixTree(16)
    for i in range(50):
        t.append(i, list(range(i, i + 40)) * 2)
    parts = dict(t.memory_breakdown())
    assert set(parts) == {"nodes", "child_pool", "child_hashes", "tokens", "tail_rings", "sequence_table", "witnesses"}
    assert sum(parts.values()) == t.memory_bytes()


RSS_CHILD = """
import numpy as np
from sufdec._core import SuffixTree
rng = np.random.default_rng(0)
seqs = [(rng.zipf(1.2, size=300) % 30000).astype(np.int32) for _ in range(1500)]
seqs += seqs[:100]  # duplicates: full-depth windows that repeat need witnesses
def rss():
    return int(open('/proc/self/statm').read().split()[1]) * 4096
r0 = rss()
t = SuffixTree(64)
for i, s in enumerate(seqs):
    t.append(i, s)
print(rss() - r0, t.memory_bytes(), sum(map(len, seqs)))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
@pytest.mark.skipif("asan" in os.environ.get("LD_PRELOAD", ""), reason="a sanitizer's allocator pads every block")
def test_memory_bytes_matches_rss_growth():
    """memory_bytes is what building the tree adds to the process's RSS (within 10%)."""
    out = subprocess.run(
        [sys.executable, "-c", RSS_CHILD],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "MALLOC_ARENA_MAX": "1"},
    )
    rss, mem, ntok = map(int, out.stdout.split())
    assert abs(rss - mem) <= 0.10 * mem, (rss / ntok, mem / ntok)
