"""Shared fixtures: a tiny tokenizer built in the test, isolated cache and store dirs."""

from __future__ import annotations

import json
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
