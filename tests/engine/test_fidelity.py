"""Greedy fidelity to plain ``model.generate()`` where the model's own generation_config
decides: its repetition penalty, EOS ids, max_new_tokens, sampling defaults; one-token
prompts; stop strings under char-level, SentencePiece-style and byte-level tokenizers
(compared token for token with transformers' StopStringCriteria); torch's global RNG;
cost calibration on a short context; the cache keyword of the installed transformers.

Every speculative run verifies the whole draft (fixed sizing, no cost model) unless the
test is about the cost model, so the oracle's right and wrong branches are all checked.
"""

from __future__ import annotations

import inspect
import logging
import warnings

import pytest
import torch

from sufdec.drafters.control import ControlState
from sufdec.drafters.settings import DraftSettings
from sufdec.engine import GenerationConfig, SpeculativeGenerator, resolve_generation
from sufdec.engine.kv import cache_kwargs, new_cache
from sufdec.engine.stopping import StopStrings

from .helpers import (
    CHARS,
    OracleDrafter,
    byte_tokenizer,
    char_tokenizer,
    llama_model,
    plain_greedy,
    random_prompts,
    sentencepiece_tokenizer,
    steer_greedy,
    tiny_model,
)

N_NEW = 32
SHAPES = ["mixed", "tree", "wrong", "chain", "empty"]
FIXED = DraftSettings(sizing="fixed", max_spec_tokens=64)


@pytest.fixture(scope="module")
def tok():
    return char_tokenizer()


def hf_generate(model, prompt: list[int], **kw) -> list[int]:
    """Plain ``model.generate()`` greedy; what is not in ``kw`` comes from the model's
    generation_config."""
    ids = torch.tensor([prompt])
    out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, **kw)
    return out[0, len(prompt) :].tolist()


def spec(model, tok, drafter, prompt, config: GenerationConfig):
    return SpeculativeGenerator(model, tok, drafter, controls=ControlState.flat()).generate(prompt, config)


# ---------------------------------------------------------------- 1. repetition penalty
@pytest.mark.parametrize("kind", ["llama", "gemma3"])
def test_model_repetition_penalty_applies_by_default(tok, kind):
    model = tiny_model(kind, seed=5)
    model.generation_config.repetition_penalty = 1.3
    differs = 0
    for i, prompt in enumerate(random_prompts(4, seed=31)):
        want = hf_generate(model, prompt, max_new_tokens=N_NEW)  # the model's penalty applies
        differs += want != plain_greedy(model, prompt, N_NEW, repetition_penalty=1.0)
        for shape in SHAPES:
            res = spec(
                model,
                tok,
                OracleDrafter(want, shape, seed=i),
                prompt,
                GenerationConfig(max_new_tokens=N_NEW, eos_token_ids=(), draft=FIXED),
            )
            assert res.token_ids == want, f"prompt {i} shape {shape}"
    assert differs, "the penalty changed no output: the test would not notice it being ignored"


# ---------------------------------------------------------------- 2. several EOS ids
def test_two_eos_ids_from_generation_config(tok):
    model = tiny_model("llama", seed=6)
    checked = 0
    for i, prompt in enumerate(random_prompts(6, seed=32)):
        long = plain_greedy(model, prompt, 48)
        # two distinct tokens whose first occurrences are early; listed late-first for odd i
        firsts = []
        for t in long[3:]:
            if t not in firsts and t not in long[:3]:
                firsts.append(t)
        if len(firsts) < 2:
            continue
        a, b = firsts[0], firsts[1]
        model.generation_config.eos_token_id = [b, a] if i % 2 else [a, b]
        try:
            want = hf_generate(model, prompt, max_new_tokens=48)
            assert want[-1] == a and len(want) < 48  # generate() ends at the first of either
            for shape in ("chain", "tree", "mixed"):
                res = spec(
                    model,
                    tok,
                    OracleDrafter(long, shape, seed=i),
                    prompt,
                    GenerationConfig(max_new_tokens=48, draft=FIXED),
                )
                assert res.token_ids == want, f"prompt {i} shape {shape} eos {(a, b)}"
                assert res.finish_reason == "eos"
            checked += 1
        finally:
            model.generation_config.eos_token_id = None
    assert checked >= 4


def test_tokenizer_eos_is_not_an_extra_stop(tok):
    """generate() stops only on the model's EOS ids (generation_config, then config): with
    none there, a tokenizer's eos_token is an ordinary token. GenerationConfig's
    ``eos_token_ids=None`` promises "what generate() would use"."""
    model = tiny_model("llama", seed=6)
    assert model.generation_config.eos_token_id is None and model.config.eos_token_id is None
    prompt = random_prompts(1, seed=33)[0]
    want = hf_generate(model, prompt, max_new_tokens=N_NEW)
    assert len(want) == N_NEW
    e = want[4]
    eos_tok = char_tokenizer()
    eos_tok.eos_token = CHARS[e]  # the tokenizer names a token plain decoding emits
    assert eos_tok.eos_token_id == e
    res = spec(model, eos_tok, OracleDrafter(want, "tree"), prompt, GenerationConfig(max_new_tokens=N_NEW, draft=FIXED))
    assert res.token_ids == want and res.finish_reason == "length"


# ---------------------------------------------------------------- 3. one-token prompt
@pytest.mark.parametrize("kind", ["llama", "gemma3", "qwen2_sliding"])
def test_one_token_prompt(tok, kind):
    # (seed 7 gives qwen2_sliding an exact float32 tie between two tokens' logits after [5]:
    # which one wins then depends on the kernel's rounding, not on speculation)
    model = tiny_model(kind, seed=8)
    for i, t in enumerate([5, 97, 200]):
        want = hf_generate(model, [t], max_new_tokens=N_NEW)
        for shape in ("tree", "chain", "mixed"):
            res = spec(
                model,
                tok,
                OracleDrafter(want, shape, seed=i),
                [t],
                GenerationConfig(max_new_tokens=N_NEW, eos_token_ids=(), draft=FIXED),
            )
            assert res.token_ids == want, f"token {t} shape {shape}"
    # a string prompt of one character goes the same way
    want = hf_generate(model, [tok("q")["input_ids"][0]], max_new_tokens=8)
    res = spec(
        model, tok, OracleDrafter(want, "tree"), "q", GenerationConfig(max_new_tokens=8, eos_token_ids=(), draft=FIXED)
    )
    assert res.token_ids == want


# ---------------------------------------------------------------- 4. max_new_tokens default
def test_max_new_tokens_from_generation_config(tok):
    model = tiny_model("llama", seed=8)
    model.generation_config.max_new_tokens = 7
    for i, prompt in enumerate(random_prompts(3, seed=34)):
        want = hf_generate(model, prompt)
        assert len(want) == 7
        drafter = OracleDrafter(plain_greedy(model, prompt, 20), "chain", seed=i)  # runs past 7
        res = spec(model, tok, drafter, prompt, GenerationConfig(eos_token_ids=(), draft=FIXED))
        assert res.token_ids == want and res.finish_reason == "length"
    assert resolve_generation(GenerationConfig(), model).max_new_tokens == 7
    assert resolve_generation(GenerationConfig(max_new_tokens=3), model).max_new_tokens == 3


# ---------------------------------------------------------------- 5. stop strings
def _hf_stop(model, prompt, tokenizer, stop: str, n: int) -> list[int]:
    return plain_greedy(model, prompt, n, stop_strings=[stop], tokenizer=tokenizer)


def _check_stop(model, tokenizer, prompt, stop, ref, n, seed=0):
    """generate() and ours stop on the same token, which completes ``stop``."""
    want = _hf_stop(model, prompt, tokenizer, stop, n)
    assert len(want) < n, f"generate() did not stop on {stop!r}"
    for shape in ("chain", "tree", "mixed"):
        res = spec(
            model,
            tokenizer,
            OracleDrafter(ref, shape, seed=seed),
            prompt,
            GenerationConfig(max_new_tokens=n, eos_token_ids=(), stop=(stop,), draft=FIXED),
        )
        assert res.token_ids == want, (stop, shape, tokenizer.decode(ref))
        assert res.finish_reason == "stop"
    return want


def test_stop_string_starting_in_the_prompt(tok):
    model = tiny_model("llama", seed=9)
    checked = 0
    for i, prompt in enumerate(random_prompts(8, seed=35, lo=6)):
        ref = plain_greedy(model, prompt, N_NEW)
        if any(t >= len(tok) for t in prompt[-2:] + ref[:3]):
            continue  # ids past the tokenizer's vocabulary decode to nothing
        text_p, text_r = tok.decode(prompt), tok.decode(ref)
        stop = text_p[-2:] + text_r[:3]
        if stop in text_p:
            continue
        want = _check_stop(model, tok, prompt, stop, ref, N_NEW, seed=i)
        assert stop in tok.decode(prompt + want) and stop not in tok.decode(want)
        assert StopStrings(tok, [stop]).hit(prompt + want)
        checked += 1
    assert checked >= 3


def test_stop_string_ending_in_space_sentencepiece():
    sp = sentencepiece_tokenizer()
    model = llama_model(vocab_size=len(sp), seed=10)
    hits = 0
    for i, prompt in enumerate(random_prompts(6, seed=36, lo=4, hi=10)):
        ref = plain_greedy(model, prompt, N_NEW)
        text = sp.decode(ref)
        spaces = [j for j in range(3, len(text) - 1) if text[j] == " " and text[j - 2 : j].strip() == text[j - 2 : j]]
        if not spaces:
            continue
        j = spaces[0]
        stop = text[j - 2 : j + 1]  # two characters, then the space a "▁" piece brings
        want = _check_stop(model, sp, prompt, stop, ref, N_NEW, seed=i)
        assert sp.convert_ids_to_tokens(want[-1]).startswith("▁")  # the space came with the last piece
        hits += 1
    assert hits >= 3


EURO = "€"  # E2 82 AC
GRIN = "\U0001f600"  # F0 9F 98 80


def _byte_model():
    """Greedy bytes: "x" -> "yzA" then euro signs forever; "q" -> grinning faces forever."""
    model = tiny_model("llama", seed=11)
    chain = {
        ord("x"): ord("y"),
        ord("y"): ord("z"),
        ord("z"): ord("A"),
        ord("A"): 0xE2,
        0xE2: 0x82,
        0x82: 0xAC,
        0xAC: 0xE2,
        ord("q"): 0xF0,
        0xF0: 0x9F,
        0x9F: 0x98,
        0x98: 0x80,
        0x80: 0xF0,
    }
    return steer_greedy(model, chain, seed=11)


@pytest.mark.parametrize(
    "prompt_text,stop,n_tokens",
    [
        ("hello x", EURO * 3, 3 + 9),  # "yzA" then the third euro's last byte
        ("hello x", "zA" + EURO, 3 + 3),  # ASCII then a multi-byte character
        ("say q", GRIN * 2, 8),
        ("say €q", EURO + "q" + GRIN, 4),  # begins in the prompt's multi-byte character
    ],
)
def test_stop_string_of_multibyte_characters(prompt_text, stop, n_tokens):
    btok = byte_tokenizer()
    model = _byte_model()
    prompt = btok(prompt_text)["input_ids"]
    assert prompt == list(prompt_text.encode("utf-8"))
    ref = plain_greedy(model, prompt, N_NEW)
    want = _check_stop(model, btok, prompt, stop, ref, N_NEW)
    assert len(want) == n_tokens
    assert btok.decode(prompt + want).endswith(stop)


def test_stop_strings_hit_by_hand():
    # char-level: overhangs on both sides, and a match starting in the "prompt"
    tok = char_tokenizer()
    ids = tok("xyzab")["input_ids"]
    stops = StopStrings(tok, ["zab"])
    assert [stops.hit(ids[:k]) for k in range(1, len(ids) + 1)] == [False] * (len(ids) - 1) + [True]
    two = CHARS.index("ta")  # one token of two characters
    seq = [CHARS.index("x"), CHARS.index("y"), two]
    assert StopStrings(tok, ["yt"]).hit(seq) and StopStrings(tok, ["yta"]).hit(seq)
    assert not StopStrings(tok, ["xy"]).hit(seq)  # ended before the last token
    assert StopStrings(tok, ["t"]).hit(seq)  # the last token runs past the stop string

    # SentencePiece: the space of "cat " arrives with the next "▁" piece
    sp = sentencepiece_tokenizer()
    ids = sp("the cat sat on")["input_ids"]
    assert sp.convert_ids_to_tokens(ids) == ["▁the", "▁cat", "▁sat", "▁on"]
    stops = StopStrings(sp, ["cat "])
    assert [stops.hit(ids[:k]) for k in range(1, 5)] == [False, False, True, False]
    stops = StopStrings(sp, [" cat"])  # a leading space the decoder drops for a lone piece
    assert [stops.hit(ids[:k]) for k in range(1, 5)] == [False, True, False, False]
    assert StopStrings(sp, ["t s"]).hit(ids[:3])

    # byte-level: only the byte completing the last character counts
    bt = byte_tokenizer()
    ids = list(("ab" + EURO * 3 + "c").encode("utf-8"))
    stops = StopStrings(bt, [EURO * 3])
    hits = [stops.hit(ids[:k]) for k in range(1, len(ids) + 1)]
    assert hits == [False] * 10 + [True, False]
    ids = list(("ab" + GRIN + GRIN).encode("utf-8"))
    stops = StopStrings(bt, ["b" + GRIN * 2])
    assert [stops.hit(ids[:k]) for k in range(1, len(ids) + 1)] == [False] * 9 + [True]
    # a long run before the match: only the window is decoded, the match still counts
    ids = list(("z" * 100 + EURO * 3).encode("utf-8"))
    assert StopStrings(bt, [EURO * 3]).hit(ids)


# ---------------------------------------------------------------- 6. global RNG
def test_seed_none_draws_from_torch_global_generator(tok):
    model = tiny_model("llama", seed=12, sharpen=10.0)
    prompt = random_prompts(1, seed=37)[0]
    ref = plain_greedy(model, prompt, 10)
    gen = SpeculativeGenerator(model, tok, OracleDrafter(ref, "tree"), controls=ControlState.flat())
    cfg = GenerationConfig(temperature=1.0, max_new_tokens=10, eos_token_ids=(), draft=FIXED)
    outs = []
    for s in (5, 5, 6, 7):
        gen.drafter = OracleDrafter(ref, "tree")
        torch.manual_seed(s)
        outs.append(gen.generate(prompt, cfg).token_ids)
        assert torch.initial_seed() == s  # not reseeded
        outs[-1] = (outs[-1], torch.rand(3).tolist())  # and the global stream continues alike
    assert outs[0] == outs[1]
    assert len({tuple(o[0]) for o in outs}) > 1  # the draw depends on the global state


# ---------------------------------------------------------------- 7. calibration on a short context
def test_cost_calibration_on_short_context(tok):
    model = llama_model(seed=13, max_position_embeddings=48)
    for i, prompt in enumerate(random_prompts(2, seed=38, lo=6, hi=8)):
        ref = plain_greedy(model, prompt, 24)
        gen = SpeculativeGenerator(model, tok, OracleDrafter(ref, "mixed", seed=i))  # cost_model="auto"
        res = gen.generate(prompt, GenerationConfig(max_new_tokens=24, eos_token_ids=()))
        assert res.token_ids == ref
        assert max(gen.cost_model().ks) <= 24


# ---------------------------------------------------------------- 8. the cache keyword
def test_forward_uses_the_installed_cache_keyword(tok):
    model = tiny_model("llama", seed=14)
    want = "cache" if "cache" in inspect.signature(type(model).forward).parameters else "past_key_values"
    assert list(cache_kwargs(model, new_cache(model))) == [want]
    prompt = random_prompts(1, seed=39)[0]
    ref = plain_greedy(model, prompt, 16)
    records: list[logging.LogRecord] = []
    handler = logging.Handler(level=logging.DEBUG)
    handler.emit = records.append
    hf_logger = logging.getLogger("transformers")
    hf_logger.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = SpeculativeGenerator(model, tok, OracleDrafter(ref, "mixed"), controls=ControlState.flat()).generate(
                prompt, GenerationConfig(max_new_tokens=16, eos_token_ids=(), draft=FIXED)
            )
    finally:
        hf_logger.removeHandler(handler)
    assert res.token_ids == ref
    assert not [w for w in caught if "past_key_values" in str(w.message)]
    assert not [r for r in records if "past_key_values" in r.getMessage()]


# ---------------------------------------------------------------- 9. sampling defaults
def test_sampling_defaults_from_generation_config():
    model = tiny_model("llama", seed=15)
    model.generation_config.do_sample = True
    model.generation_config.temperature = 0.7
    model.generation_config.top_k = 5
    s = resolve_generation(GenerationConfig(), model).sampling
    assert s.do_sample and s.temperature == pytest.approx(0.7) and s.top_k == 5
    assert s.top_p == 1.0 and s.repetition_penalty == 1.0
    g = resolve_generation(GenerationConfig(temperature=0), model).sampling
    assert not g.do_sample and g.temperature == 0.0
    g = resolve_generation(GenerationConfig(do_sample=False), model).sampling
    assert not g.do_sample
    s = resolve_generation(GenerationConfig(temperature=1.2), model).sampling
    assert s.do_sample and s.temperature == pytest.approx(1.2) and s.top_k == 5
