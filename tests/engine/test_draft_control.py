"""The decode loop and draft control: one feedback call per step with what the step did,
no drafting when the control says it does not pay, and every policy lossless."""

from __future__ import annotations

import pytest

from sufdec.drafters.control import ControlState, DraftControl
from sufdec.drafters.settings import DraftSettings
from sufdec.drafters.sizing import CostModel
from sufdec.engine import GenerationConfig, SpeculativeGenerator
from tests.engine.helpers import OracleDrafter, char_tokenizer, plain_greedy, random_prompts, tiny_model

CPU = CostModel((1, 2, 4, 8, 16, 32, 64), (1.0, 1.1, 1.25, 1.5, 1.9, 2.6, 4.2))


class Recording(DraftControl):
    """A fixed control that notes every call the decode loop makes."""

    def __init__(self, shared, source, skip_every=0):
        super().__init__(shared, source)
        self.calls, self.outcomes, self.skip_every, self.n = [], [], skip_every, 0
        self.limits, self.said_no, self.no = [], [], False  # limit() answers; per step: was it 0?

    def limit(self, max_nodes):
        self.n += 1
        self.calls.append("limit")
        self.limits.append(0 if self.skip_every and self.n % self.skip_every == 0 else max_nodes)
        self.no = self.limits[-1] == 0
        return self.limits[-1]

    def size(self, draft, max_nodes, max_depth=None):
        self.calls.append("size")
        return super().size(draft, max_nodes, max_depth)

    def feedback(self, out):
        self.calls.append("feedback")
        self.said_no.append(self.no)
        self.no = False
        self.outcomes.append(out)
        super().feedback(out)

    def end(self):
        self.calls.append("end")


class RecordingControls(ControlState):
    def __init__(self, skip_every=0):
        super().__init__(CostModel.flat())
        self.made, self.skip_every = [], skip_every

    def for_request(self, policy, source="suffix", max_len=None):
        ctl = Recording(self, source, self.skip_every)
        self.made.append(ctl)
        return ctl


class CountingOracle(OracleDrafter):
    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.asked = 0

    def draft(self, max_nodes):
        self.asked += 1
        return super().draft(max_nodes)


def test_one_feedback_per_step_and_no_draft_when_the_control_says_so():
    model, tok = tiny_model("llama", seed=3), char_tokenizer()
    prompt = random_prompts(1, seed=3)[0]
    ref = plain_greedy(model, prompt, 24)
    controls = RecordingControls(skip_every=3)
    drafter = CountingOracle(ref, "chain", depth=4)
    gen = SpeculativeGenerator(model, tok, drafter, controls=controls)
    res = gen.generate(
        prompt, GenerationConfig(max_new_tokens=24, eos_token_ids=(), draft=DraftSettings(sizing="fixed"))
    )
    assert res.token_ids == ref
    ctl = controls.made[-1]
    assert ctl.calls.count("feedback") == res.steps and ctl.calls[-1] == "end"
    # the last step may have room for one token only: nothing to draft, no limit asked
    assert res.steps - 1 <= ctl.calls.count("limit") <= res.steps
    # every third step the control said "do not draft": the drafter was not even asked
    skipped = [s for s, no in zip(res.step_results, ctl.said_no) if no]
    assert skipped and all(s.drafted == 0 and s.verified == 0 and len(s.tokens) == 1 for s in skipped)
    assert drafter.asked == sum(1 for k in ctl.limits if k > 0)
    # the feedback is what the step did
    for out, step in zip(ctl.outcomes, res.step_results):
        assert len(out.verified) == step.verified and out.accepted == step.accepted_nodes
        assert out.emitted == step.tokens and out.drafted == step.drafted
        assert out.forward_s > 0


@pytest.mark.parametrize("sizing", ["fixed", "cost", "beta-ts", "calibration-ts"])
@pytest.mark.parametrize("shape", ["mixed", "chain"])
def test_every_policy_is_lossless(sizing, shape):
    """Whatever a policy verifies or skips, greedy output is plain decoding's."""
    model, tok = tiny_model("qwen2_sliding", seed=5), char_tokenizer()
    controls = ControlState(CPU, seed=0)
    for i, prompt in enumerate(random_prompts(3, seed=21)):
        ref = plain_greedy(model, prompt, 30)
        gen = SpeculativeGenerator(model, tok, OracleDrafter(ref, shape, seed=i), controls=controls)
        res = gen.generate(
            prompt, GenerationConfig(max_new_tokens=30, eos_token_ids=(), draft=DraftSettings(sizing=sizing))
        )
        assert res.token_ids == ref, (sizing, shape, i)
    if sizing in ("beta-ts", "calibration-ts"):
        post = controls.posterior("suffix")
        assert post.a + post.b > 2  # it learned from the steps
