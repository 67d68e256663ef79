"""Micro-benchmark of the suffix-tree core: insert, speculate, memory, load.

``run_tree_bench`` builds a tree over most of a corpus, then replays held-out sequences
the way a decoder does: an incremental matcher is fed one token per step and asked for a
draft after each; then drafts the same steps from scratch (no matcher).
``synthetic_corpus`` makes a corpus of Zipfian tokens with repeated phrases when no real
one is at hand.
"""

from __future__ import annotations

import os
import time
from typing import Sequence

import numpy as np

from sufdec.suffix import PRESETS, SuffixSettings, SuffixTree, speculate_both


def synthetic_corpus(
    n_tokens: int = 1_000_000,
    vocab: int = 32000,
    mean_len: int = 250,
    n_phrases: int = 5000,
    phrase_prob: float = 0.35,
    zipf_a: float = 1.1,
    seed: int = 0,
) -> list[list[int]]:
    """Replies of Zipfian tokens where a share of the text is copied from a phrase bank.

    Phrases (3-40 tokens) are themselves Zipf-distributed, so popular phrases repeat
    often and give the tree long, frequent paths, like boilerplate in chat replies.
    """
    rng = np.random.default_rng(seed)

    def zipf_tokens(n: int) -> np.ndarray:
        return (rng.zipf(zipf_a, size=n) - 1) % vocab

    phrases = [zipf_tokens(int(rng.integers(3, 41))) for _ in range(n_phrases)]
    phrase_rank_p = 1.0 / np.arange(1, n_phrases + 1) ** 0.9
    phrase_rank_p /= phrase_rank_p.sum()
    corpus: list[list[int]] = []
    total = 0
    while total < n_tokens:
        length = max(8, int(rng.exponential(mean_len)))
        parts: list[np.ndarray] = []
        got = 0
        while got < length:
            if rng.random() < phrase_prob:
                part = phrases[int(rng.choice(n_phrases, p=phrase_rank_p))]
            else:
                part = zipf_tokens(int(rng.integers(1, 12)))
            parts.append(part)
            got += len(part)
        seq = np.concatenate(parts)[:length].astype(np.int64).tolist()
        corpus.append(seq)
        total += len(seq)
    return corpus


def _rss_bytes() -> int | None:
    """Resident set size of this process (Linux), after handing freed heap back to the OS
    so that memory reused from an earlier tree is counted again; None elsewhere."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, AttributeError, ValueError):
        return None


def _time_scratch(tree: SuffixTree, contexts: list, config) -> np.ndarray:
    """µs per from-scratch draft (``SuffixTree.speculate(context, config)``) per context."""
    clock = time.perf_counter_ns
    out = np.empty(len(contexts), dtype=np.float64)
    speculate = tree.speculate
    for i, ctx in enumerate(contexts):
        t0 = clock()
        speculate(ctx, config)
        out[i] = clock() - t0
    return out / 1e3


def run_tree_bench(
    corpus: Sequence[Sequence[int]],
    max_depth: int = 64,
    held_out: float = 0.02,
    max_queries: int = 20000,
    draft: SuffixSettings = SuffixSettings(**PRESETS["paper"]),
    both_trees: bool = False,
) -> dict:
    """Time insert / speculate / load of the core on ``corpus`` (lists of token ids).

    The last ``held_out`` share of sequences is not inserted; each is replayed through a
    fresh Matcher, one token per step, with a draft after every step (frozen protocol).
    By default the global tree alone is timed (``Matcher.speculate`` with ``draft``'s
    SpecConfig, the paper preset); ``both_trees=True`` times ``speculate_both``
    over the global tree and a request tree that holds the sequence decoded so far, in
    ``draft.mode`` (the request tree's update is timed apart, per token). Afterwards the
    same steps are drafted from scratch (``SuffixTree.speculate`` on each step's last
    ``max_depth`` tokens, global tree alone, ``draft.mode``): ``scratch_us_per_call``.
    ``rss_growth_bytes_per_token`` is what the inserts added to this process's RSS, next
    to the tree's own ``memory_bytes_per_token``.
    """
    n_eval = max(1, int(len(corpus) * held_out))
    train, evals = list(corpus[:-n_eval]), list(corpus[-n_eval:])
    arrays = [np.asarray(s, dtype=np.int32) for s in train]
    n_train_tokens = int(sum(len(a) for a in arrays))
    tree, built = _time_build(arrays, max_depth)
    mem = built["memory_bytes"]
    rss0, rss1 = built.pop("rss")
    d = _time_drafts(tree, evals, max_depth, max_queries, draft, both_trees)
    us = np.asarray(d["times_ns"], dtype=np.float64) / 1e3
    n_calls, drafted, spec_cpu_s = len(us), d["drafted"], d["cpu_s"]
    req_ns, match_lens = d["req_ns"], d["match_lens"]
    scratch = _time_scratch(tree, d["contexts"], draft.core)
    insert_s, insert_cpu_s = built["insert_s"], built["insert_cpu_s"]
    return {
        "corpus_sequences": len(corpus),
        "corpus_tokens": int(sum(len(s) for s in corpus)),
        "train_tokens": n_train_tokens,
        "max_depth": max_depth,
        "num_nodes": tree.num_nodes,
        "nodes_per_token": tree.num_nodes / max(1, n_train_tokens),
        "update_us_per_token": insert_s * 1e6 / max(1, n_train_tokens),
        # CPU time of this process: on a shared, overloaded machine wall time also counts
        # the time the scheduler gave to others (the CPU figure includes Python overhead)
        "update_cpu_us_per_token": insert_cpu_s * 1e6 / max(1, n_train_tokens),
        "speculate_calls": n_calls,
        "speculate_us_per_call": float(us.mean()) if n_calls else 0.0,
        "speculate_us_p50": float(np.percentile(us, 50)) if n_calls else 0.0,
        "speculate_us_p99": float(np.percentile(us, 99)) if n_calls else 0.0,
        "speculate_us_per_token": float(us.sum() / drafted) if drafted else 0.0,
        "speculate_cpu_us_per_call": spec_cpu_s * 1e6 / max(1, n_calls),
        "drafted_tokens_per_call": drafted / max(1, n_calls),
        # the same contexts (their last max_depth tokens) drafted from scratch, global tree
        # alone, in draft.mode: what a caller without a live matcher pays
        "scratch_us_per_call": float(scratch.mean()) if n_calls else 0.0,
        "scratch_us_p99": float(np.percentile(scratch, 99)) if n_calls else 0.0,
        "mode": draft.mode if both_trees else "global",
        "request_update_us_per_token": req_ns / 1e3 / max(1, n_calls) if req_ns else None,
        "mean_match_len": match_lens / max(1, n_calls),
        "memory_bytes": mem,
        "memory_bytes_per_token": mem / max(1, n_train_tokens),
        # growth of the process's resident memory over the inserts (None off Linux)
        "rss_growth_bytes_per_token": (rss1 - rss0) / max(1, n_train_tokens) if rss0 and rss1 else None,
        "serialized_bytes": built["serialized_bytes"],
        "serialize_s": built["serialize_s"],
        "load_s": built["load_s"],
    }


def _time_build(arrays: list, max_depth: int) -> tuple[SuffixTree, dict]:
    """Insert every sequence into a fresh tree, then serialize and reload it, timing each."""
    rss0 = _rss_bytes()
    tree = SuffixTree(max_depth)
    c0, t0 = time.process_time(), time.perf_counter()
    for i, a in enumerate(arrays):
        tree.append(i, a)
    insert_s = time.perf_counter() - t0
    insert_cpu_s = time.process_time() - c0
    rss1 = _rss_bytes()
    mem = tree.memory_bytes()
    t0 = time.perf_counter()
    blob = tree.serialize()
    serialize_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    loaded = SuffixTree.load(blob)
    load_s = time.perf_counter() - t0
    assert loaded.num_tokens == tree.num_tokens
    return tree, {
        "insert_s": insert_s,
        "insert_cpu_s": insert_cpu_s,
        "rss": (rss0, rss1),
        "memory_bytes": mem,
        "serialized_bytes": len(blob),
        "serialize_s": serialize_s,
        "load_s": load_s,
    }


def _time_drafts(
    tree: SuffixTree, evals: list, max_depth: int, max_queries: int, draft: SuffixSettings, both_trees: bool
) -> dict:
    """Replay ``evals`` one token a step through a fresh matcher each, timing each step's draft."""
    times_ns: list[int] = []
    drafted = 0
    match_lens = 0
    single = draft.core  # the global tree alone, built once (cheaper than keywords per call)
    clock = time.perf_counter_ns
    config = draft.core if both_trees else None
    contexts: list = []  # the same steps' contexts, drafted from scratch afterwards
    req_ns = 0
    spec_cpu0 = time.process_time()
    for seq in evals:
        m = tree.matcher()
        req = SuffixTree(max_depth) if config is not None else None
        arr = np.asarray(seq, dtype=np.int32)
        for pos, tok in enumerate(seq):
            if len(times_ns) >= max_queries:
                break
            contexts.append(arr[max(0, pos + 1 - max_depth) : pos + 1])
            step = [int(tok)]
            if req is not None:
                t0 = clock()
                req.append(0, step)
                req_ns += clock() - t0
                t0 = clock()
                m.feed(step)
                d = speculate_both(m, req, 0, config)
            else:
                t0 = clock()
                m.feed(step)
                d = m.speculate(single)
            times_ns.append(clock() - t0)
            drafted += len(d)
            match_lens += d.match_len
        if len(times_ns) >= max_queries:
            break
    # CPU time of the drafting loop (with the request-tree updates taken out by their
    # share of the wall time; both run in this one thread)
    spec_cpu_s = time.process_time() - spec_cpu0
    if req_ns:
        spec_cpu_s *= sum(times_ns) / (sum(times_ns) + req_ns)
    return {
        "times_ns": times_ns,
        "drafted": drafted,
        "match_lens": match_lens,
        "contexts": contexts,
        "req_ns": req_ns,
        "cpu_s": spec_cpu_s,
    }
