"""Loading helpers, calibration, streaming, cost-aware sizing on tiny models."""

from __future__ import annotations

import io
from contextlib import redirect_stdout

import pytest
import torch
from transformers import Gemma2Config, LlamaConfig, TextStreamer

from sufdec.drafters.base import NullDrafter
from sufdec.drafters.control import ControlState
from sufdec.drafters.settings import DraftSettings
from sufdec.drafters.sizing import CostModel
from sufdec.engine import GenerationConfig, SpeculativeGenerator, resolve_generation
from sufdec.engine.calibrate import cost_model_for, measure_cost_model
from sufdec.engine.loading import ModelLoadError, resolve_attn, resolve_dtype, split_model_path

from .helpers import OracleDrafter, char_tokenizer, plain_greedy, random_prompts, tiny_model

FIXED = DraftSettings(sizing="fixed")


def test_split_model_path(tmp_path):
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "config.json").write_text("{}")
    assert split_model_path(hf) == (str(hf), None)
    g = tmp_path / "g"
    g.mkdir()
    (g / "m.Q4.gguf").write_bytes(b"")
    assert split_model_path(g) == (str(g), "m.Q4.gguf")
    assert split_model_path(g / "m.Q4.gguf") == (str(g), "m.Q4.gguf")
    (g / "other.gguf").write_bytes(b"")
    with pytest.raises(ModelLoadError):
        split_model_path(g)
    assert split_model_path("HuggingFaceTB/SmolLM2-135M-Instruct") == ("HuggingFaceTB/SmolLM2-135M-Instruct", None)
    (tmp_path / "x.bin").write_bytes(b"")
    with pytest.raises(ModelLoadError):
        split_model_path(tmp_path / "x.bin")


def test_attn_and_dtype_resolution():
    assert resolve_attn("auto", LlamaConfig()) == "sdpa"
    assert resolve_attn("auto", Gemma2Config()) == "eager"  # softcapping needs eager
    assert resolve_attn("eager", LlamaConfig()) == "eager"
    with pytest.raises(ValueError, match="cannot take"):
        resolve_attn("flash_attention_2", LlamaConfig())
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert resolve_dtype("auto", torch.device("cuda")) == torch.bfloat16
    assert resolve_dtype("bf16") == torch.bfloat16
    with pytest.raises(ValueError):
        resolve_dtype("int3")


def test_generator_refuses_flash_attention():
    model = tiny_model("llama")
    model.config._attn_implementation = "flash_attention_2"
    with pytest.raises(ValueError, match="cannot take tree masks"):
        SpeculativeGenerator(model, None, None)
    model.config._attn_implementation = "sdpa"


def test_config_validation():
    from sufdec.drafters.service import DraftService

    with pytest.raises(ValueError, match="spec must be one of tree, chain"):  # the registry knows the kinds
        DraftService(DraftSettings(spec="sometimes"))
    with pytest.raises(ValueError):
        GenerationConfig(max_new_tokens=0)
    with pytest.raises(ValueError):
        GenerationConfig(top_p=0.0)
    assert GenerationConfig(stop="x").stop == ("x",)
    model = tiny_model("llama")
    assert resolve_generation(GenerationConfig(temperature=0.7), model).sampling.do_sample
    assert not resolve_generation(GenerationConfig(temperature=0.0, do_sample=True), model).sampling.do_sample


def test_calibration_curve_is_cached_and_sane():
    model = tiny_model("qwen2_sliding", seed=5)
    cm = measure_cost_model(model, ks=(1, 2, 4, 8), past_len=32, repeats=1)
    assert cm.ks == (1, 2, 4, 8) and cm.costs[0] == 1.0
    assert all(b >= a for a, b in zip(cm.costs, cm.costs[1:]))
    first = cost_model_for(model, ks=(1, 4), past_len=16, repeats=1)
    assert cost_model_for(model) is first


def test_text_streamer_and_results():
    model, tok = tiny_model("llama", seed=6), char_tokenizer()
    prompt = random_prompts(1, seed=6)[0]
    ref = plain_greedy(model, prompt, 30)
    gen = SpeculativeGenerator(model, tok, OracleDrafter(ref, "tree"))
    buf = io.StringIO()
    with redirect_stdout(buf):
        res = gen.generate(
            prompt,
            GenerationConfig(max_new_tokens=30, eos_token_ids=(), draft=FIXED),
            streamer=TextStreamer(tok, skip_prompt=True),
        )
    assert buf.getvalue().strip() == res.text.strip() == tok.decode(ref).strip()
    assert res.new_tokens == 30 == sum(res.tokens_per_step) and res.steps == len(res.step_results)
    assert res.finish_reason == "length" and res.tokens_per_s > 0 and res.mean_tokens_per_step > 1
    ms = res.mean_timings_ms()
    assert ms["forward"] > 0 and set(ms) >= {"draft", "layout", "accept", "commit", "observe"}
    assert all(s.verified <= s.drafted for s in res.step_results)


def test_text_prompt_is_tokenized():
    model, tok = tiny_model("llama", seed=6), char_tokenizer()
    gen = SpeculativeGenerator(model, tok, None)
    a = gen.generate("hello", GenerationConfig(max_new_tokens=5, eos_token_ids=()))
    b = gen.generate(tok("hello")["input_ids"], GenerationConfig(max_new_tokens=5, eos_token_ids=()))
    assert a.token_ids == b.token_ids and len(a.token_ids) == 5


def test_cost_sizing_drops_unlikely_nodes():
    """With a CPU-like cost curve, low-probability drafts are not verified at all."""
    model, tok = tiny_model("llama", seed=7), char_tokenizer()
    prompt = random_prompts(1, seed=7)[0]
    ref = plain_greedy(model, prompt, 20)
    cpu = CostModel((1, 2, 4, 8, 16, 32, 64), (1.0, 1.1, 1.25, 1.5, 1.9, 2.6, 4.2))

    class Unlikely(OracleDrafter):
        def draft(self, max_nodes):
            d = super().draft(max_nodes)
            return type(d)(d.token_ids, d.parents, [0.01] * len(d), 0.01 * len(d), d.match_len)

    gen = SpeculativeGenerator(model, tok, Unlikely(ref, "tree"), controls=ControlState(cpu, calibrate=False))
    res = gen.generate(prompt, GenerationConfig(max_new_tokens=20, eos_token_ids=()))
    assert res.token_ids == ref
    assert all(s.verified == 0 for s in res.step_results) and res.steps == 20
    likely = SpeculativeGenerator(
        model, tok, OracleDrafter(ref, "chain", depth=8), controls=ControlState(cpu, calibrate=False)
    )
    res2 = likely.generate(prompt, GenerationConfig(max_new_tokens=20, eos_token_ids=()))
    assert res2.token_ids == ref and any(s.verified > 0 for s in res2.step_results)


def test_acceptance_calibration_learns_from_outcomes():
    """Cost sizing reads probabilities through what was observed: an always-right drafter
    that claims 1% gets verified once seen right; one that claims 99% and is always wrong
    is verified less and less. Outputs stay identical throughout."""
    model, tok = tiny_model("llama", seed=7), char_tokenizer()
    prompt = random_prompts(1, seed=7)[0]
    ref = plain_greedy(model, prompt, 80)
    cpu = CostModel((1, 2, 4, 8, 16, 32, 64), (1.0, 1.1, 1.25, 1.5, 1.9, 2.6, 4.2))
    cfg = GenerationConfig(max_new_tokens=80, eos_token_ids=())

    class Unlikely(OracleDrafter):
        def draft(self, max_nodes):
            d = super().draft(max_nodes)
            return type(d)(d.token_ids, d.parents, [0.01] * len(d), 0.01 * len(d), d.match_len)

    modest = SpeculativeGenerator(model, tok, Unlikely(ref, "chain", depth=4), controls=ControlState(cpu))
    res = modest.generate(prompt, cfg)
    assert res.token_ids == ref
    assert res.step_results[0].verified == 0  # the prior believes 1% at first
    assert sum(s.verified for s in res.step_results[-5:]) > 0  # and learns that it is right
    assert modest.controls.calibration("suffix").mapping()[0][0] > 0.2  # depth 1, q < 0.2: right after all

    class Liar(OracleDrafter):  # drafts a wrong token at the root, claims 0.99
        def draft(self, max_nodes):
            d = super().draft(max_nodes)
            wrong = [self._wrong(t) for t in d.token_ids]
            return type(d)(wrong, d.parents, [0.99] * len(d), 0.99 * len(d), d.match_len)

    proud = SpeculativeGenerator(model, tok, Liar(ref, "chain", depth=4), controls=ControlState(cpu))
    res = proud.generate(prompt, cfg)
    assert res.token_ids == ref
    assert res.step_results[0].verified > 0
    first, last = (sum(s.verified for s in part) for part in (res.step_results[:10], res.step_results[-10:]))
    assert last < first / 2  # believed less and less
    assert proud.controls.calibration("suffix").mapping()[0][-1] < 0.2  # depth 1, q >= 0.98: always wrong


def test_null_drafter_is_plain_decoding():
    model, tok = tiny_model("gemma3", seed=8), char_tokenizer()
    prompt = random_prompts(1, seed=8)[0]
    res = SpeculativeGenerator(model, tok, NullDrafter()).generate(
        prompt, GenerationConfig(max_new_tokens=25, eos_token_ids=())
    )
    assert res.token_ids == plain_greedy(model, prompt, 25) and res.steps == 25
