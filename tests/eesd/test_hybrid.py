"""The hybrid drafter on tiny models: suffix drafts where the store matches, early-exit
chains where it does not, and the output always plain decoding's (float32 greedy)."""

from __future__ import annotations

import pytest

from sufdec.drafters.budget import CostModel
from sufdec.drafters.control import DraftControls
from sufdec.drafters.hybrid import HybridDrafter
from sufdec.drafters.suffix import SuffixDrafter
from sufdec.eesd import exit_model
from sufdec.eesd.drafter import EarlyExitDrafter
from sufdec.engine import GenerationConfig, SpeculativeGenerator
from sufdec.suffix import DraftSettings, SuffixIndex
from tests.engine.helpers import char_tokenizer, plain_greedy, random_prompts, tiny_model


@pytest.mark.parametrize("kind", ["llama", "gemma3"])
@pytest.mark.parametrize("sizing", ["beta-ts", "calibration-ts"])
def test_hybrid_is_lossless_and_uses_both_sources(kind, sizing):
    model = tiny_model(kind, seed=4, sharpen=3.0)
    draft_model = exit_model.build_draft_model(model, exit_model.new_exit_layer(model, 1), 1)
    prompts = random_prompts(4, seed=13, lo=2, hi=10)
    refs = [plain_greedy(model, p, 40) for p in prompts]
    index = SuffixIndex()
    for i, ref in enumerate(refs[:2]):   # the store knows half of the answers
        index.add(i, ref)
    settings = DraftSettings(spec="hybrid", sizing=sizing)
    controls = DraftControls(CostModel.flat(), seed=0)
    controls.draft_cost = lambda source: 0.0   # drafting judged free (not timed): both sides try, deterministically
    made = []

    def factory():
        made.append(HybridDrafter(SuffixDrafter(index, settings), EarlyExitDrafter(draft_model, None, max_len=4),
                                  controls, settings))
        return made[-1]

    gen = SpeculativeGenerator(model, char_tokenizer(), drafter_factory=factory, controls=controls)
    cfg = GenerationConfig(max_new_tokens=40, eos_token_ids=(), draft=settings)
    steps = []
    for prompt, ref in zip(prompts, refs):
        res = gen.generate(prompt, cfg)
        assert res.token_ids == ref, (kind, sizing, prompt)
        steps.append(res.steps)
    known, unknown = made[:2], made[2:]
    assert all(h.choices["suffix"] > 0 for h in known)             # stored answers: suffix drafts
    assert sum(h.choices["eesd"] for h in unknown) > 0              # new ones: early exit tried
    assert max(steps[:2]) < min(steps[2:])                          # whole stored answers in few steps
