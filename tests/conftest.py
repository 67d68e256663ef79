"""Shared fixtures: a tiny tokenizer built in the test, isolated cache and store dirs."""

from __future__ import annotations

from pathlib import Path

import pytest


def build_word_tokenizer(folder: Path, words: list[str]) -> Path:
    """Write a whitespace word-level tokenizer.json with ``words`` plus <unk>, <eos>."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"<unk>": 0, "<eos>": 1}
    for w in words:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    from tokenizers import AddedToken

    tok.add_special_tokens([AddedToken("<eos>", special=True)])
    folder.mkdir(parents=True, exist_ok=True)
    tok.save(str(folder / "tokenizer.json"))
    return folder


SQL_WORDS = (
    "SELECT FROM WHERE count(*) name age singer concert stadium ORDER BY DESC ASC GROUP "
    "HAVING > < = 30 40 AND OR JOIN ON T1 T2 AS . , ( ) avg(age) min(age) max(age) country "
    "'France' LIMIT 1 the a of is"
).split()


@pytest.fixture
def word_tokenizer_dir(tmp_path: Path) -> Path:
    return build_word_tokenizer(tmp_path / "tok", SQL_WORDS)


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path_factory, monkeypatch):
    """Never touch the user's store; keep the model cache (pulling it is slow)."""
    monkeypatch.setenv("SUFDEC_STORE", str(tmp_path_factory.mktemp("default-store")))


def build_tiny_model(folder: Path, words: list[str] = SQL_WORDS, seed: int = 0, max_positions: int = 256) -> Path:
    """A tiny random Llama (2 layers, hidden 32) with a word-level tokenizer, saved as a
    Hugging Face folder: what `sufdec generate --model DIR` loads in well under a second."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    build_word_tokenizer(folder / "tok", words)
    tok = PreTrainedTokenizerFast(
        tokenizer_file=str(folder / "tok" / "tokenizer.json"), eos_token="<eos>", unk_token="<unk>", pad_token="<eos>"
    )
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max_positions,
        eos_token_id=tok.eos_token_id,
        bos_token_id=None,
        pad_token_id=tok.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))
