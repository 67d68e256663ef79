"""The C++ core against the brute-force reference."""

from __future__ import annotations

import random
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sufdec._core import SuffixTree
from tests.suffix.helpers import assert_counts, check_speculate, enumerate_tree, examples
from tests.suffix.reference import RefTree

FAST = settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.too_slow])

depths = st.sampled_from([1, 2, 3, 4, 7, 64])
small_seq = st.lists(st.integers(0, 3), min_size=0, max_size=30)
seq_lists = st.lists(small_seq, min_size=1, max_size=6)


def build(D, seqs, chunked=False):
    t, r = SuffixTree(D), RefTree(D)
    for i, s in enumerate(seqs):
        if chunked and len(s) > 2:
            cut = len(s) // 2
            t.append(i, s[:cut])
            t.append(i, s[cut:])
        else:
            t.append(i, s)
        r.append(i, s)
    return t, r


@FAST
@given(depths, seq_lists, st.booleans())
def test_counts_match_reference(D, seqs, chunked):
    t, r = build(D, seqs, chunked)
    assert t.check_integrity() == ""
    assert_counts(t, r)


@FAST
@given(
    depths,
    seq_lists,
    st.lists(st.integers(0, 3), max_size=12),
    st.booleans(),
    st.sampled_from([0.0, 0.1, 0.3]),
    st.sampled_from([(32, 4.0, 0.0), (3, 1.0, 0.0), (8, 0.5, 1.0), (5, 2.0, -1.0)]),
)
def test_speculate_matches_reference(D, seqs, ctx, use_tree, minp, budget_cfg):
    t, r = build(D, seqs)
    m, f, o = budget_cfg
    check_speculate(t, r, ctx, max_spec_tokens=m, factor=f, offset=o, min_prob=minp, use_tree=use_tree)


@FAST
@given(depths, seq_lists, st.lists(st.integers(0, 3), max_size=40), st.integers(1, 5))
def test_matcher_equals_scratch(D, seqs, ctx, step):
    t, _ = build(D, seqs)
    m = t.matcher()
    for i in range(0, len(ctx), step):
        m.feed(ctx[i : i + step])
        a = m.speculate()
        b = t.speculate(ctx[: i + step])
        assert (list(a.token_ids), list(a.parents), a.match_len) == (list(b.token_ids), list(b.parents), b.match_len)
        assert m.match_len >= a.match_len


@FAST
@given(depths, seq_lists, st.data())
def test_remove_restores(D, seqs, data):
    t, r = build(D, seqs, chunked=True)
    victims = data.draw(st.lists(st.sampled_from(range(len(seqs))), unique=True))
    for v in victims:
        t.remove(v)
        r.remove(v)
        assert t.check_integrity() == ""
    fresh, _ = build(D, [s for i, s in enumerate(seqs) if i not in victims])
    assert_counts(t, r)
    assert enumerate_tree(t) == enumerate_tree(fresh)
    assert t.num_nodes == fresh.num_nodes  # canonical shape


@FAST
@given(depths, seq_lists)
def test_serialize_roundtrip(D, seqs):
    t, r = build(D, seqs)
    if seqs:
        t.remove(0)
        r.remove(0)
    blob = t.serialize()
    u = SuffixTree.load(blob)
    assert u.check_integrity() == ""
    assert u.serialize() == blob
    assert_counts(u, r)
    assert u.max_depth == D
    # the loaded tree keeps working: append and remove
    u.append(99, [1, 2, 3, 1, 2])
    r.append(99, [1, 2, 3, 1, 2])
    for sid in list(r.seqs)[:1]:
        u.append(sid, [3, 3])
        r.append(sid, [3, 3])
    assert u.check_integrity() == ""
    assert_counts(u, r)


def test_request_tail_equals_speculate_on_itself():
    rng = random.Random(0)
    for D in (2, 5, 64):
        t = SuffixTree(D)
        seq = []
        for _ in range(200):
            tok = rng.randrange(4)
            t.append(7, [tok])
            seq.append(tok)
            a = t.speculate_tail(7)
            b = t.speculate(seq)
            assert (list(a.token_ids), list(a.probs), a.match_len) == (list(b.token_ids), list(b.probs), b.match_len)
        assert t.check_integrity() == ""


def test_repeated_tokens_and_duplicates():
    for D in (1, 2, 3, 64):
        t, r = build(D, [[5] * 100, [5] * 100, [5] * 37, [], [5, 6] * 40, [5, 6] * 40])
        assert t.check_integrity() == ""
        assert_counts(t, r)
        for v in (1, 0, 4, 3):
            t.remove(v)
            r.remove(v)
            assert t.check_integrity() == ""
            assert_counts(t, r)
        check_speculate(t, r, [5, 5, 6, 5])


def test_huge_token_ids():
    big = [2**31 - 1, 2**31 - 2, 0, 2**31 - 1, 2**31 - 2, 7]
    t, r = build(64, [big, big[::-1], big])
    assert t.check_integrity() == ""
    assert_counts(t, r)
    check_speculate(t, r, [2**31 - 1])


def test_high_fanout_hash_nodes():
    rng = random.Random(1)
    seqs = [[rng.randrange(500) for _ in range(300)] for _ in range(10)]
    t, r = build(4, seqs)
    assert t.check_integrity() == ""
    assert_counts(t, r)
    for v in (3, 0, 9):
        t.remove(v)
        r.remove(v)
    assert t.check_integrity() == ""
    assert_counts(t, r)
    u = SuffixTree.load(t.serialize())
    assert_counts(u, r)


def test_empty_and_unknown():
    t = SuffixTree()
    assert t.max_depth == 64
    d = t.speculate([1, 2, 3])
    assert len(d) == 0 and d.match_len == 0 and d.score == 0
    t.append(3, [])
    assert t.has(3) and 3 in t and t.num_sequences == 1 and t.num_tokens == 0
    assert len(t.speculate([])) == 0
    t.remove(3)
    assert not t.has(3)
    with pytest.raises(ValueError):
        t.remove(3)
    with pytest.raises(ValueError):
        t.speculate_tail(3)
    assert t.check_integrity() == ""


def test_numpy_inputs():
    t = SuffixTree(8)
    t.append(1, np.array([1, 2, 3, 1, 2, 4], dtype=np.int32))
    t.append(2, np.array([1, 2, 3], dtype=np.int64))
    t.append(3, np.arange(10, dtype=np.int64)[::2])  # strided
    assert t.sequence(3) == [0, 2, 4, 6, 8]
    d = t.speculate(np.array([1, 2], dtype=np.int64))
    assert d.match_len == 2 and d.token_ids[0] == 3


@pytest.mark.parametrize(
    "bad",
    [
        [-1],
        [2**31],
        [1, 2**40],
        [1.5],
        ["a"],
        "abc",
        np.array([1.0]),
        np.array([[1, 2]]),
        np.array([-3], dtype=np.int64),
        np.array([2**31], dtype=np.int64),
        [None],
    ],
)
def test_bad_tokens_raise(bad):
    t = SuffixTree(4)
    t.append(1, [1, 2])
    with pytest.raises((ValueError, TypeError)):
        t.append(1, bad)
    with pytest.raises((ValueError, TypeError)):
        t.speculate(bad)
    assert t.sequence(1) == [1, 2] and t.check_integrity() == ""


def test_bad_params_raise():
    with pytest.raises(ValueError):
        SuffixTree(0)
    with pytest.raises(ValueError):
        SuffixTree(-5)
    with pytest.raises(ValueError):
        SuffixTree(70000)
    t = SuffixTree(4)
    for kw in (
        {"max_spec_tokens": -1},
        {"max_spec_factor": -1.0},
        {"min_token_prob": 1.5},
        {"min_token_prob": float("nan")},
        {"max_spec_offset": float("inf")},
    ):
        with pytest.raises(ValueError):
            t.speculate([1], **kw)


def test_corrupt_buffers_raise():
    rng = random.Random(2)
    t, _ = build(6, [[rng.randrange(5) for _ in range(80)] for _ in range(5)])
    blob = t.serialize()
    for cut in (0, 1, 8, 31, 32, 100, len(blob) // 2, len(blob) - 1):
        with pytest.raises(ValueError):
            SuffixTree.load(blob[:cut])
    with pytest.raises(ValueError):
        SuffixTree.load(blob + b"\0")
    with pytest.raises(ValueError):
        SuffixTree.load(b"NOTATREE" + blob[8:])
    for _ in range(200):
        b = bytearray(blob)
        i = rng.randrange(len(b))
        b[i] ^= 1 << rng.randrange(8)
        with pytest.raises(ValueError):
            SuffixTree.load(bytes(b))
    with pytest.raises(TypeError):
        SuffixTree.load("not bytes")
    assert SuffixTree.load(memoryview(blob)).num_tokens == t.num_tokens


def test_corrupt_payload_with_valid_checksum_raises():
    """Adversarial payloads (checksum recomputed) must be rejected, never crash."""
    import struct

    from tests.suffix.checksum import fix_checksum

    rng = random.Random(3)
    t, _ = build(5, [[rng.randrange(4) for _ in range(60)] for _ in range(4)])
    blob = t.serialize()
    rejected = 0
    for _ in range(400):
        b = bytearray(blob)
        for _ in range(rng.randrange(1, 4)):
            i = rng.randrange(32, len(b) - 4)
            struct.pack_into("<I", b, i, rng.choice([0, 1, 2, 0xFFFFFFFF, 0xFFFFFFFE, rng.randrange(1 << 32)]))
        try:
            u = SuffixTree.load(fix_checksum(bytes(b)))
        except ValueError:
            rejected += 1
            continue
        # accepted: it must still be safe to use
        u.check_integrity()
        u.speculate([1, 2, 3])
    assert rejected > 0


def test_introspection():
    t = SuffixTree(4)
    t.append(1, [1, 2, 3, 1, 2, 4])
    assert t.count([1, 2]) == 2
    assert t.count([]) == 6
    assert t.count([9]) == 0
    assert t.top_continuations([1, 2], 5) == [(3, 1), (4, 1)] or t.top_continuations([1, 2], 5) == [(4, 1), (3, 1)]
    h = t.depth_histogram()
    assert len(h) == 5 and sum(h) == t.num_nodes
    assert t.memory_bytes() > 0
    assert t.sequence_ids() == [1]


def test_suffix_does_not_import_torch():
    code = "import sys, sufdec.suffix; assert 'torch' not in sys.modules; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"
