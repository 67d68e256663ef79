"""Float32 greedy with speculation is token-identical to plain generate() on tiny models."""

from __future__ import annotations

import pytest

from sufdec.drafters.settings import DraftSettings
from sufdec.engine import GenerationConfig, SpeculativeGenerator

from .helpers import OracleDrafter, char_tokenizer, plain_greedy, random_prompts, tiny_model

KINDS = ["llama", "qwen2", "qwen2_sliding", "gemma3"]
N_NEW = 48


@pytest.fixture(scope="module", params=KINDS)
def model(request):
    return tiny_model(request.param, seed=KINDS.index(request.param))


@pytest.fixture(scope="module")
def tok():
    return char_tokenizer()


def _fixed(spec: str = "tree", sizing: str = "fixed", **kw) -> GenerationConfig:
    base = dict(
        max_new_tokens=N_NEW, eos_token_ids=(), draft=DraftSettings(spec=spec, sizing=sizing, max_spec_tokens=64)
    )
    base.update(kw)
    return GenerationConfig(**base)


SHAPES = ["mixed", "tree", "wrong", "chain", "empty"]


@pytest.mark.parametrize("shape", SHAPES)
def test_greedy_matches_generate(model, tok, shape):
    for i, prompt in enumerate(random_prompts(10, seed=SHAPES.index(shape))):
        ref = plain_greedy(model, prompt, N_NEW)
        drafter = OracleDrafter(ref, shape, seed=i)
        gen = SpeculativeGenerator(model, tok, drafter)
        res = gen.generate(prompt, _fixed())
        assert res.token_ids == ref, f"prompt {i} shape {shape}"
        assert sum(res.tokens_per_step) == N_NEW
        if shape in ("tree", "chain"):
            assert res.steps < N_NEW  # the right branches were taken


def test_spec_off_matches_generate(model, tok):
    for prompt in random_prompts(3, seed=7):
        ref = plain_greedy(model, prompt, N_NEW)
        res = SpeculativeGenerator(model, tok, OracleDrafter(ref)).generate(prompt, _fixed(spec="off"))
        assert res.token_ids == ref and res.steps == N_NEW


def test_chain_mode_matches_generate(model, tok):
    for i, prompt in enumerate(random_prompts(3, seed=8)):
        ref = plain_greedy(model, prompt, N_NEW)
        res = SpeculativeGenerator(model, tok, OracleDrafter(ref, "tree", seed=i)).generate(
            prompt, _fixed(spec="chain")
        )
        assert res.token_ids == ref


def test_eos_inside_tree(model, tok):
    for i, prompt in enumerate(random_prompts(4, seed=11)):
        ref = plain_greedy(model, prompt, N_NEW)
        eos = ref[5 + i]
        want = plain_greedy(model, prompt, N_NEW, eos_token_id=eos)
        assert want[-1] == eos and len(want) < N_NEW
        drafter = OracleDrafter(ref, "chain", seed=i)  # deep chains run past the EOS
        res = SpeculativeGenerator(model, tok, drafter).generate(prompt, _fixed(eos_token_ids=(eos,)))
        assert res.token_ids == want and res.finish_reason == "eos"


@pytest.mark.parametrize("max_new", [1, 2, 7, 13])
def test_max_new_tokens_mid_path(model, tok, max_new):
    prompt = random_prompts(1, seed=max_new)[0]
    ref = plain_greedy(model, prompt, N_NEW)
    for sizing in ("fixed", "cost"):
        drafter = OracleDrafter(ref, "chain", seed=max_new)
        res = SpeculativeGenerator(model, tok, drafter).generate(prompt, _fixed(max_new_tokens=max_new, sizing=sizing))
        assert res.token_ids == ref[:max_new] and res.finish_reason == "length"


def test_stop_strings_match_generate(model, tok):
    hits = 0
    for i, prompt in enumerate(random_prompts(5, seed=13)):
        ref = plain_greedy(model, prompt, N_NEW)
        text = tok.decode(ref)
        stop = text[6 + i : 8 + i]
        want = plain_greedy(model, prompt, N_NEW, stop_strings=[stop], tokenizer=tok)
        drafter = OracleDrafter(ref, "chain", seed=i)
        res = SpeculativeGenerator(model, tok, drafter).generate(prompt, _fixed(stop=(stop,)))
        assert res.token_ids == want, (stop, text)
        hits += res.finish_reason == "stop"
    assert hits >= 4


@pytest.mark.parametrize("kind", ["llama", "gemma3"])
def test_eager_attention_matches(tok, kind):
    model = tiny_model(kind, seed=3, attn="eager")
    for i, prompt in enumerate(random_prompts(3, seed=21)):
        ref = plain_greedy(model, prompt, N_NEW)
        res = SpeculativeGenerator(model, tok, OracleDrafter(ref, "mixed", seed=i)).generate(prompt, _fixed())
        assert res.token_ids == ref


def test_drafter_factory_and_lifecycle(tok):
    model = tiny_model("llama", seed=4)
    prompt = random_prompts(1, seed=5)[0]
    ref = plain_greedy(model, prompt, N_NEW)
    made: list[OracleDrafter] = []

    def factory():
        made.append(OracleDrafter(ref, "tree"))
        made[-1].ended = None
        orig_end = made[-1].end

        def end(out, finished, d=made[-1]):
            d.ended = (list(out), finished)
            orig_end(out, finished)

        made[-1].end = end
        return made[-1]

    gen = SpeculativeGenerator(model, tok, drafter_factory=factory)
    steps = list(gen.stream(prompt, _fixed()))
    assert len(made) == 1 and made[0].ended == (ref, True)
    assert [t for s in steps for t in s.tokens] == ref
    assert steps[-1].finished and not any(s.finished for s in steps[:-1])
    assert made[0].context == prompt + ref
    # closing a stream early tells the drafter it did not finish
    it = gen.stream(prompt, _fixed())
    next(it)
    it.close()
    assert made[-1].ended[1] is False
