"""Sampling with speculation keeps the target distribution (chi-squared goodness of fit).

The exact distribution of the first two tokens comes from transformers' own generate():
its processed scores (repetition penalty, temperature, top-k, top-p in generate's order)
for the prompt and for every prompt + first token. Speculative samples, drafted with
likely and unlikely branches, must fit it.
"""

from __future__ import annotations

import functools

import pytest
import torch

from sufdec.drafters.settings import DraftSettings
from sufdec.engine import GenerationConfig, SpeculativeGenerator

from .helpers import TopKDrafter, char_tokenizer, plain_greedy, random_prompts, tiny_model

N_SAMPLES = 1200
SETTINGS = {
    "temperature": dict(temperature=1.0),
    "top_k": dict(temperature=0.7, top_k=5),
    "top_p": dict(temperature=0.7, top_p=0.8),
    "repetition_penalty": dict(temperature=1.0, repetition_penalty=1.8),
}

FIXED = DraftSettings(sizing="fixed")


@pytest.fixture(scope="module")
def model():
    return tiny_model("llama", seed=1, sharpen=30.0)


class MemoDrafter(TopKDrafter):
    """TopKDrafter with drafts memoised per context (samples share their first drafts)."""

    @functools.lru_cache(maxsize=None)
    def _top_cached(self, ctx: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(TopKDrafter._top(self, list(ctx)))

    def _top(self, ctx):
        return list(self._top_cached(tuple(ctx)))


def _processed_probs(model, rows: list[list[int]], kw: dict) -> torch.Tensor:
    """generate()'s own next-token distribution for each row: [len(rows), V]."""
    ids = torch.tensor(rows)
    out = model.generate(
        ids,
        attention_mask=torch.ones_like(ids),
        do_sample=True,
        max_new_tokens=1,
        output_scores=True,
        return_dict_in_generate=True,
        top_k=kw.get("top_k", 0),
        top_p=kw.get("top_p", 1.0),
        temperature=kw["temperature"],
        repetition_penalty=kw.get("repetition_penalty", 1.0),
    )
    return torch.softmax(out.scores[0].float(), dim=-1)


def _exact_joint(model, prompt: list[int], kw: dict) -> dict[tuple[int, int], float]:
    p1 = _processed_probs(model, [prompt], kw)[0]
    firsts = [t for t in range(p1.numel()) if p1[t] > 0]
    p2 = _processed_probs(model, [prompt + [t] for t in firsts], kw)
    joint = {}
    for i, t in enumerate(firsts):
        for u in (p2[i] > 0).nonzero().flatten().tolist():
            joint[(t, u)] = float(p1[t] * p2[i, u])
    return joint


def _chi2_pvalue(counts: dict, exact: dict, n: int) -> float:
    big = {c for c, p in exact.items() if p * n >= 5}
    obs = [counts.get(c, 0) for c in big]
    exp = [exact[c] * n for c in big]
    other_exp = n - sum(exp)
    other_obs = n - sum(obs)
    if other_exp >= 5:
        obs.append(other_obs)
        exp.append(other_exp)
    else:
        assert other_obs <= max(10, 3 * other_exp)
    stat = sum((o - e) ** 2 / e for o, e in zip(obs, exp))
    df = len(obs) - 1
    return float(torch.special.gammaincc(torch.tensor(df / 2.0), torch.tensor(stat / 2.0)))


@pytest.mark.parametrize("setting", list(SETTINGS))
def test_speculative_sampling_fits_target(model, setting):
    kw = SETTINGS[setting]
    prompt = random_prompts(2, seed=1)[1]
    exact = _exact_joint(model, prompt, kw)
    assert abs(sum(exact.values()) - 1.0) < 1e-4
    gen = SpeculativeGenerator(model, char_tokenizer(), MemoDrafter(model, k=3))
    counts: dict[tuple[int, int], int] = {}
    steps = 0
    for seed in range(N_SAMPLES):
        cfg = GenerationConfig(max_new_tokens=2, seed=seed, eos_token_ids=(), draft=FIXED, **kw)
        res = gen.generate(prompt, cfg)
        key = tuple(res.token_ids)
        counts[key] = counts.get(key, 0) + 1
        steps += res.steps
    assert steps < 1.9 * N_SAMPLES  # drafts were accepted most of the time
    p = _chi2_pvalue(counts, exact, N_SAMPLES)
    assert p > 1e-3, f"{setting}: chi2 p-value {p:.2e}"


def test_chi2_detects_a_shifted_distribution(model):
    """The same test rejects samples drawn at a slightly different temperature."""
    prompt = random_prompts(2, seed=1)[1]
    exact = _exact_joint(model, prompt, dict(temperature=1.0))
    gen = SpeculativeGenerator(model, char_tokenizer(), MemoDrafter(model, k=3))
    counts: dict[tuple[int, int], int] = {}
    for seed in range(N_SAMPLES):
        cfg = GenerationConfig(max_new_tokens=2, seed=seed, eos_token_ids=(), temperature=1.15)
        key = tuple(gen.generate(prompt, cfg).token_ids)
        counts[key] = counts.get(key, 0) + 1
    assert _chi2_pvalue(counts, exact, N_SAMPLES) < 1e-3


def test_greedy_repetition_penalty_matches_generate(model):
    tok = char_tokenizer()
    for prompt in random_prompts(4, seed=2):
        want = plain_greedy(model, prompt, 30, repetition_penalty=1.3)
        gen = SpeculativeGenerator(model, tok, MemoDrafter(model, k=2))
        cfg = GenerationConfig(max_new_tokens=30, repetition_penalty=1.3, eos_token_ids=(), draft=FIXED)
        assert gen.generate(prompt, cfg).token_ids == want


def test_seed_reproducible(model):
    gen = SpeculativeGenerator(model, char_tokenizer(), MemoDrafter(model, k=3))
    cfg = GenerationConfig(max_new_tokens=20, seed=123, temperature=1.0, eos_token_ids=())
    prompt = random_prompts(1, seed=9)[0]
    assert gen.generate(prompt, cfg).token_ids == gen.generate(prompt, cfg).token_ids
