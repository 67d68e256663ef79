"""Stateful model test: random append/remove/speculate/serialize against the reference."""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from sufdec._core import SpecConfig, SuffixTree, speculate_both
from tests.suffix.helpers import assert_counts, check_merged, check_speculate, examples
from tests.suffix.reference import RefTree, merged_candidates

toks = st.lists(st.integers(0, 4), min_size=0, max_size=12)


class TreeMachine(RuleBasedStateMachine):
    @initialize(D=st.sampled_from([1, 2, 3, 5, 64]))
    def setup(self, D):
        self.tree = SuffixTree(D)
        self.ref = RefTree(D)
        self.matcher = self.tree.matcher()
        self.ctx: list[int] = []

    @rule(sid=st.integers(0, 5), tokens=toks)
    def append(self, sid, tokens):
        self.tree.append(sid, tokens)
        self.ref.append(sid, tokens)

    @precondition(lambda self: self.ref.seqs)
    @rule(data=st.data())
    def remove(self, data):
        sid = data.draw(st.sampled_from(sorted(self.ref.seqs)))
        self.tree.remove(sid)
        self.ref.remove(sid)

    @rule(ctx=toks, use_tree=st.booleans())
    def speculate(self, ctx, use_tree):
        check_speculate(self.tree, self.ref, ctx, use_tree=use_tree)

    @rule(tokens=toks)
    def feed_matcher(self, tokens):
        self.matcher.feed(tokens)
        self.ctx.extend(tokens)
        d = self.matcher.speculate()
        check_speculate(self.tree, self.ref, self.ctx, draft=d)

    @rule(prior=st.sampled_from([0.0, 0.5]), max_sources=st.sampled_from([1, 3]))
    def merged_from_matcher(self, prior, max_sources):
        # the matcher must notice appends/removes/reloads since it was fed
        cfg = SpecConfig(
            max_spec_tokens=16,
            max_spec_factor=1000.0,
            min_token_prob=0.0,
            mode="merged",
            prior=prior,
            max_sources=max_sources,
        )
        d = speculate_both(self.matcher, None, 0, cfg)
        L, cands = merged_candidates(self.ref.counts(), self.ctx, None, (), self.ref.D, prior, max_sources)
        check_merged(d, L, cands, 16, 1000.0, 0.0, 0.0)

    @precondition(lambda self: self.ref.seqs)
    @rule(data=st.data())
    def speculate_tail(self, data):
        sid = data.draw(st.sampled_from(sorted(self.ref.seqs)))
        d = self.tree.speculate_tail(sid)
        check_speculate(self.tree, self.ref, self.ref.seqs[sid], draft=d)

    @rule()
    def roundtrip(self):
        blob = self.tree.serialize()
        self.tree = SuffixTree.load(blob)
        self.matcher = self.tree.matcher()
        self.matcher.feed(self.ctx)

    @invariant()
    def consistent(self):
        if hasattr(self, "tree"):
            assert self.tree.check_integrity() == ""
            assert_counts(self.tree, self.ref)


TreeMachine.TestCase.settings = settings(
    max_examples=examples(40), stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestTreeMachine = TreeMachine.TestCase
