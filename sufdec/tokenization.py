"""Tokenizers for indexing, without torch.

``sufdec index`` and ``sufdec stats`` must start quickly, so they read a model folder's
``tokenizer.json`` with the ``tokenizers`` library directly. Only a GGUF file or a hub
id needs transformers (imported lazily, and only then).

A store records the tokenizer's *fingerprint* (a hash of its vocabulary and special
tokens), so that token ids written by one tokenizer are never read with another.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer


class TokenizerLoadError(RuntimeError):
    """The tokenizer could not be found or loaded (message says what was tried)."""


def fingerprint(tok: Tokenizer) -> str:
    """A stable hash of the vocabulary and the special tokens (hex, 16 bytes)."""
    vocab = sorted(tok.get_vocab(with_added_tokens=True).items(), key=lambda kv: kv[1])
    special = sorted((i, t.content) for i, t in tok.get_added_tokens_decoder().items() if t.special)
    payload = json.dumps({"vocab": vocab, "special": special}, ensure_ascii=False)
    return hashlib.blake2b(payload.encode("utf-8"), digest_size=16).hexdigest()


@dataclass(frozen=True)
class TextTokenizer:
    """A loaded tokenizer with the identity a store records for it."""

    name: str
    fingerprint: str
    vocab_size: int
    backend: Tokenizer

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        """Token ids of each text, without special tokens (outputs, not prompts)."""
        return [e.ids for e in self.backend.encode_batch(texts, add_special_tokens=False)]

    def encode(self, text: str) -> list[int]:
        return self.backend.encode(text, add_special_tokens=False).ids

    def decode(self, ids: list[int]) -> str:
        return self.backend.decode(list(ids), skip_special_tokens=False)

    def token_text(self, token_id: int) -> str:
        """Readable text of one token (for rendering trees)."""
        return self.backend.decode([int(token_id)], skip_special_tokens=False)


def from_backend(tok: Tokenizer, name: str) -> TextTokenizer:
    return TextTokenizer(name, fingerprint(tok), tok.get_vocab_size(with_added_tokens=True), tok)


def tokenizer_info(tokenizer, name: str):
    """The store identity (``TokenizerInfo``: name, fingerprint) of a transformers tokenizer."""
    from sufdec.store.meta import TokenizerInfo

    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise ValueError("sufdec needs a fast (tokenizers-backed) tokenizer to fingerprint the store")
    return TokenizerInfo(name, fingerprint(backend))


def remote_code_refused(spec: str | Path, exc: BaseException) -> str | None:
    """The one line for a model folder whose own Python code transformers would have to run
    (an ``auto_map`` in its config), or None when ``exc`` is about something else."""
    if "trust_remote_code" not in str(exc):
        return None
    return (
        f"{spec} ships its own Python code (auto_map in its config) and sufdec runs a model's code only "
        "when asked: read that code, then pass --trust-remote-code (trust_remote_code=True in Python)"
    )


def load_tokenizer(
    model: str | Path, *, gguf_file: str | None = None, trust_remote_code: bool = False
) -> TextTokenizer:
    """Load the tokenizer named by ``model``.

    A folder with ``tokenizer.json`` is read directly; a ``.gguf`` file (or a folder plus
    ``gguf_file``) and a hub id go through transformers. (The default model's folder comes
    from ``sufdec.models.ensure_default_model``.) A tokenizer class shipped as code in the
    folder runs only with ``trust_remote_code=True``.
    """
    path = Path(model).expanduser()
    if path.is_dir() and gguf_file is None and (path / "tokenizer.json").is_file():
        return from_backend(Tokenizer.from_file(str(path / "tokenizer.json")), path.name)
    if path.is_file() and path.name == "tokenizer.json":
        return from_backend(Tokenizer.from_file(str(path)), path.parent.name)
    try:
        from transformers import AutoTokenizer

        trust = {"trust_remote_code": bool(trust_remote_code)}
        if path.is_file() and path.suffix == ".gguf":
            hf = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name, **trust)
            name = path.stem
        elif path.is_dir() and gguf_file is not None:
            hf = AutoTokenizer.from_pretrained(str(path), gguf_file=gguf_file, **trust)
            name = Path(gguf_file).stem
        else:
            hf = AutoTokenizer.from_pretrained(str(model), **trust)
            name = str(model)
    except Exception as exc:  # transformers raises many kinds; one clear message here
        refused = remote_code_refused(model, exc)
        if refused is not None:
            raise TokenizerLoadError(refused) from None
        raise TokenizerLoadError(f"could not load a tokenizer from {model!r}: {exc}") from exc
    backend = getattr(hf, "backend_tokenizer", None)
    if backend is None:
        raise TokenizerLoadError(f"{model!r} has no fast tokenizer; sufdec needs one")
    return from_backend(backend, name)
