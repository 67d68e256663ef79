"""Sampling with early-exit drafts keeps the target's distribution: the joint of the first
3 and 4 tokens, chi-squared against the exact one, with chains 3 deep (so nodes below
depth 1 are verified). Early-exit drafts are a deterministic function of the context, so
the engine's rule (draw from the target, descend while the draw is drafted) is exact; this
test is what proves it for this drafter."""

from __future__ import annotations

import pytest

from sufdec.drafters.control import ControlState
from sufdec.drafters.settings import DraftSettings
from sufdec.eesd import exit_model
from sufdec.eesd.drafter import EarlyExitDrafter
from sufdec.engine import GenerationConfig, SpeculativeGenerator
from tests.engine.helpers import char_tokenizer
from tests.engine.test_sampling_joint import MAX_NEW, Target, build_case, chi2_pvalue, marginal

N = 1500


@pytest.mark.parametrize(
    "name, branch", [("llama-sdpa-penalty", 0.0), ("gemma3-sliding-penalty", 0.0), ("llama-sdpa-penalty", 0.2)]
)
def test_joint_distribution_with_early_exit_chains(name, branch):
    """``branch`` > 0: trees (a sibling where the top-2 are close), verified by the same rule."""
    model, prompt, sampling = build_case(name)
    # exit after all but the last layer, as a copy of it: drafts close to the target's
    # argmax, so chains are often accepted deep and nodes below depth 1 get verified
    layer = len(model.model.layers) - 1
    draft_model = exit_model.build_draft_model(model, exit_model.new_exit_layer(model, layer), layer)
    siblings = [0]

    class Counting(EarlyExitDrafter):
        def draft(self, max_nodes):
            d = super().draft(max_nodes)
            siblings[0] += len(d.parents) - len(set(d.parents))
            return d

    gen = SpeculativeGenerator(
        model,
        char_tokenizer(),
        drafter_factory=lambda: Counting(draft_model, None, max_len=MAX_NEW - 1, min_prob=0.0, branch=branch),
        controls=ControlState.flat(),
    )
    draft = DraftSettings(spec="eesd", sizing="fixed")
    counts: dict[tuple[int, ...], int] = {}
    deep = 0
    for seed in range(N):
        res = gen.generate(
            prompt, GenerationConfig(max_new_tokens=MAX_NEW, seed=seed, eos_token_ids=(), draft=draft, **sampling)
        )
        counts[tuple(res.token_ids)] = counts.get(tuple(res.token_ids), 0) + 1
        deep += res.step_results[0].accepted_nodes >= 2
    exact = Target(model, sampling).joint(prompt, MAX_NEW)
    impossible = sum(c for seq, c in counts.items() if seq not in exact)
    p3 = chi2_pvalue(marginal(counts, 3), marginal(exact, 3), N)
    p4 = chi2_pvalue(counts, exact, N)
    print(f"{name}: p(first 3) = {p3:.3g}, p(first 4) = {p4:.3g}, deep first steps = {deep / N:.2f}")
    assert impossible == 0
    assert (siblings[0] > N // 10) if branch else siblings[0] == 0
    assert deep > 0.1 * N  # drafted nodes below depth 1 were accepted, so they were verified
    assert p3 > 1e-3 and p4 > 1e-3
