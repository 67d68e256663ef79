"""The hybrid drafter on tiny models: suffix drafts where the store matches, early-exit
chains where it does not, and the output always plain decoding's (float32 greedy)."""

from __future__ import annotations

import pytest

from sufdec.drafters.control import ControlState
from sufdec.drafters.hybrid import HybridDrafter, sides
from sufdec.drafters.settings import DraftSettings
from sufdec.drafters.sizing import CostModel
from sufdec.drafters.suffix import SuffixDrafter
from sufdec.eesd import exit_model
from sufdec.eesd.drafter import EarlyExitDrafter
from sufdec.engine import GenerationConfig, SpeculativeGenerator
from sufdec.suffix import SuffixIndex
from tests.engine.helpers import char_tokenizer, plain_greedy, random_prompts, tiny_model


@pytest.mark.parametrize("kind", ["llama", "gemma3"])
@pytest.mark.parametrize("sizing", ["beta-ts", "calibration-ts"])
def test_hybrid_is_lossless_and_uses_both_sources(kind, sizing):
    model = tiny_model(kind, seed=4, sharpen=3.0)
    draft_model = exit_model.build_draft_model(model, exit_model.new_exit_layer(model, 1), 1)
    prompts = random_prompts(4, seed=13, lo=2, hi=10)
    refs = [plain_greedy(model, p, 40) for p in prompts]
    index = SuffixIndex()
    for i, ref in enumerate(refs[:2]):  # the store knows half of the answers
        index.add(i, ref)
    settings = DraftSettings(spec="hybrid", sizing=sizing)
    controls = ControlState(CostModel.flat(), seed=0)
    controls.draft_cost = lambda source: 0.0  # drafting judged free (not timed): both sides try, deterministically
    made = []

    def factory():
        made.append(
            HybridDrafter(
                SuffixDrafter(index, settings),
                EarlyExitDrafter(draft_model, None, max_len=4),
                sides(controls, settings),
                settings,
            )
        )
        return made[-1]

    gen = SpeculativeGenerator(model, char_tokenizer(), drafter_factory=factory, controls=controls)
    cfg = GenerationConfig(max_new_tokens=40, eos_token_ids=(), draft=settings)
    steps = []
    for prompt, ref in zip(prompts, refs):
        res = gen.generate(prompt, cfg)
        assert res.token_ids == ref, (kind, sizing, prompt)
        steps.append(res.steps)
    known, unknown = made[:2], made[2:]
    assert all(h.choices["suffix"] > 0 for h in known)  # stored answers: suffix drafts
    assert sum(h.choices["eesd"] for h in unknown) > 0  # new ones: early exit tried
    assert max(steps[:2]) < min(steps[2:])  # whole stored answers in few steps


def test_one_feedback_and_one_learning_call_per_step_and_request(monkeypatch):
    """The drafting service drives the hybrid: the engine reports each step once, the
    service hands the hybrid that one report (no second clock, no re-derived accepted
    count), and a finished request is learned once."""
    from sufdec.drafters.service import DraftRequest, DraftService

    model = tiny_model("llama", seed=4, sharpen=3.0)
    draft_model = exit_model.build_draft_model(model, exit_model.new_exit_layer(model, 1), 1)
    prompts = random_prompts(3, seed=13, lo=2, hi=10)
    index = SuffixIndex()
    index.add(0, plain_greedy(model, prompts[0], 30))
    learned, reports, told = [], [], []
    service = DraftService(
        DraftSettings(spec="hybrid", sizing="calibration-ts"),
        tree=lambda: index,
        exit_drafter=lambda: EarlyExitDrafter(draft_model, None, max_len=4),
        learn=lambda ids: learned.append(ids) or len(learned),
        cost=CostModel.flat(),
    )
    feedback, hybrid_feedback = DraftRequest.feedback, HybridDrafter.feedback
    monkeypatch.setattr(DraftRequest, "feedback", lambda self, o: reports.append(o) or feedback(self, o))
    monkeypatch.setattr(HybridDrafter, "feedback", lambda self, o: told.append(o) or hybrid_feedback(self, o))
    gen = SpeculativeGenerator(model, char_tokenizer(), drafting=service)
    steps = 0
    for prompt in prompts:
        res = gen.generate(prompt, GenerationConfig(max_new_tokens=30, eos_token_ids=()))
        assert res.token_ids == plain_greedy(model, prompt, 30) == learned[-1]
        steps += res.steps
        assert res.drafting["spec"] == "hybrid" and res.drafting["learned"]
    assert len(reports) == steps and told == reports  # one report per step, handed on as it is
    assert len(learned) == len(prompts)  # one learning call per request
