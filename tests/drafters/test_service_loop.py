"""The smallest engine adapter over the drafting service: a greedy loop over plain
``model(...)`` calls (no KV cache, chains only), written against the service's four verbs
and nothing else. It is what a new engine has to write; the test checks it is lossless,
drafts from the store's tree and learns each output once."""

from __future__ import annotations

import torch

from sufdec.drafters.control import ControlState, StepOutcome
from sufdec.drafters.service import DraftService
from sufdec.drafters.settings import DraftSettings
from sufdec.suffix import SuffixIndex


@torch.inference_mode()
def speculative_greedy(model, service: DraftService, prompt: list[int], max_new: int) -> tuple[list[int], int]:
    """(generated tokens, forwards): verify each step's chain in one forward, keep the
    longest prefix greedy decoding agrees with, plus the model's own next token."""
    request = service.start(prompt)
    ids, steps = list(prompt), 0
    while len(ids) - len(prompt) < max_new:
        left = max_new - (len(ids) - len(prompt))
        raw, draft = request.propose(max_depth=left - 1)
        chain = draft.token_ids  # a chain: node i's parent is i - 1
        logits = model(torch.tensor([ids + chain])).logits[0, len(ids) - 1 :]  # [1 + len(chain), V]
        best = logits.argmax(-1).tolist()
        accepted = 0
        while accepted < len(chain) and chain[accepted] == best[accepted]:
            accepted += 1
        emitted = chain[:accepted] + [best[accepted]]
        ids += emitted
        steps += 1
        request.feedback(StepOutcome(draft, accepted, emitted, drafted=len(raw)))
    request.finish(ids[len(prompt) :], finished=True)
    return ids[len(prompt) :], steps


def test_a_plain_loop_over_the_service_is_lossless_and_learns() -> None:
    from tests.engine.helpers import plain_greedy, random_prompts, tiny_model

    model = tiny_model("llama", seed=6)
    prompt = random_prompts(1, seed=3, lo=10, hi=10)[0]
    reference = plain_greedy(model, prompt, 40)
    tree, learned = SuffixIndex(), []
    tree.add(0, prompt + reference)  # a past output: the same request was served before
    service = DraftService(
        DraftSettings(spec="chain", sizing="fixed"),
        tree=lambda: tree,
        learn=lambda out: learned.append(out) or len(learned),
        controls=ControlState.flat(),
    )
    out, steps = speculative_greedy(model, service, prompt, 40)
    assert out == reference
    assert steps < 40 / 4, steps  # the stored output was drafted and accepted in long chains
    assert learned == [reference]


def test_the_service_learns_each_finished_output_once_and_no_cut_short_one() -> None:
    learned: list[list[int]] = []
    service = DraftService(DraftSettings(spec="tree"), learn=lambda out: learned.append(out) or len(learned))
    for spec in ("tree", "chain", "off"):  # plain decoding learns through the same path
        request = service.start([1, 2, 3], DraftSettings(spec=spec))
        request.feedback(StepOutcome(request.propose(4)[1], 0, [4]))
        assert request.finish([4], finished=True) == len(learned)
        request.finish([4], finished=True)  # a second call changes nothing
    cut = service.start([1, 2, 3])
    assert cut.finish([4, 5], finished=False) is None  # an error or a cancelled stream teaches nothing
    assert learned == [[4], [4], [4]]
    assert service.start([1]).summary() == {"spec": "tree", "learned": False, "learned_id": None}
