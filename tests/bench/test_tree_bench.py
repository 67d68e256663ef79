"""The core micro-benchmark (sufdec.bench.tree) on a small synthetic corpus."""

from __future__ import annotations

from sufdec.bench.tree import run_tree_bench, synthetic_corpus
from sufdec.drafters.settings import DraftSettings


def test_tree_bench_times_the_global_tree_and_both_trees():
    corpus = synthetic_corpus(20_000, n_phrases=200)
    alone = run_tree_bench(corpus, max_queries=500, held_out=0.2)
    assert alone["mode"] == "global" and alone["request_update_us_per_token"] is None
    assert alone["speculate_calls"] == 500 and alone["drafted_tokens_per_call"] > 0
    both = run_tree_bench(corpus, max_queries=500, held_out=0.2, draft=DraftSettings.preset("merged"), both_trees=True)
    assert both["mode"] == "merged" and both["request_update_us_per_token"] is not None
    assert both["num_nodes"] == alone["num_nodes"]
