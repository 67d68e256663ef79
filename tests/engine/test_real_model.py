"""The real default model (SmolLM2-135M-Instruct), float32: speculation == generate()."""

from __future__ import annotations

import pytest
import torch

from sufdec.drafters.settings import DraftSettings
from sufdec.engine import GenerationConfig, SpeculativeGenerator, load_model
from sufdec.prompts import encode_prompt

from .helpers import OracleDrafter

pytestmark = [pytest.mark.model, pytest.mark.slow]

PROMPTS = [
    "What is the capital of France?",
    "Write a Python function that reverses a string.",
    "List three primary colors.",
    "Explain recursion in one sentence.",
    "Translate 'good morning' into Spanish.",
    "Write a SQL query that counts the rows of a table named users.",
    "What is 12 times 11?",
    "Give me a haiku about the sea.",
    "Name a famous physicist.",
    "How do I sort a list in Python?",
    "What does HTTP stand for?",
    "Describe a cat in two sentences.",
    "Write a short greeting for a birthday card.",
    "What is the boiling point of water in Celsius?",
    "Suggest a name for a pet goldfish.",
    "Write a function in JavaScript that adds two numbers.",
    "Why is the sky blue?",
    "What is a prime number?",
    "Write a SQL query selecting the names of all singers older than 30.",
    "Summarize the plot of Cinderella in one sentence.",
    "What are the days of the week?",
    "Give an example of a metaphor.",
]
N_NEW = 32

FIXED = DraftSettings(sizing="fixed")


def _default_model_dir():
    import os

    from sufdec.models import default_cache_root
    from sufdec.session import default_model

    return default_model(default_cache_root(os.environ))


@pytest.fixture(scope="module")
def smol():
    model, tok = load_model(_default_model_dir(), device="cpu", dtype="float32")
    return model, tok


def _chat_ids(tok, text: str) -> list[int]:
    return encode_prompt(tok, text)


def test_loaded_as_expected(smol):
    model, tok = smol
    assert model.dtype == torch.float32 and model.config._attn_implementation == "sdpa"
    assert not model.training


def test_speculative_greedy_equals_generate(smol):
    model, tok = smol
    mismatches = []
    total_steps = 0
    for i, text in enumerate(PROMPTS):
        prompt = _chat_ids(tok, text)
        ids = torch.tensor([prompt])
        with torch.inference_mode():
            out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=N_NEW)
        ref = out[0, len(prompt) :].tolist()
        drafter = OracleDrafter(ref + [0] * 8, "mixed", seed=i)
        gen = SpeculativeGenerator(model, tok, drafter)
        res = gen.generate(prompt, GenerationConfig(max_new_tokens=N_NEW, draft=FIXED))
        total_steps += res.steps
        if res.token_ids != ref:
            mismatches.append((text, ref, res.token_ids))
    assert not mismatches, mismatches[0]
    assert total_steps < len(PROMPTS) * N_NEW * 0.8


def _gguf_file():
    import os
    from pathlib import Path

    from sufdec.models import gguf_file

    for cand in (os.environ.get("SUFDEC_TEST_GGUF"), gguf_file(_default_model_dir())):
        if cand and Path(cand).is_file():
            return Path(cand)
    return None


def test_gguf_load_and_convert(smol, tmp_path):
    """A GGUF file loads directly and converts to a safetensors folder with the same weights."""
    gguf = _gguf_file()
    if gguf is None:
        pytest.skip("no GGUF file of the default model here (set SUFDEC_TEST_GGUF)")
    from sufdec.engine import convert_gguf_to_safetensors

    out = convert_gguf_to_safetensors(gguf, tmp_path / "conv")
    assert (out / "config.json").is_file() and list(out.glob("*.safetensors"))
    converted, tok2 = load_model(out, device="cpu", dtype="float32")
    direct, _ = load_model(gguf, device="cpu", dtype="float32")
    ids = torch.tensor([_chat_ids(tok2, "Hello there")])
    with torch.inference_mode():
        a = converted(ids).logits
        b = direct(ids).logits
        c = smol[0](ids).logits
    assert torch.allclose(a, b) and torch.allclose(a, c, atol=1e-4)
