"""Tiny seeded models, a char-level tokenizer and test drafters shared by the engine tests."""

from __future__ import annotations

import random
import string

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import (
    AutoModelForCausalLM,
    Gemma3TextConfig,
    LlamaConfig,
    PreTrainedTokenizerFast,
    Qwen2Config,
)

from sufdec.drafters.base import ContextDrafter
from sufdec.suffix.draft import Draft

VOCAB = 256
_SINGLE = list(string.ascii_letters + string.digits + string.punctuation + " ")
_PAIRS = [a + b for a in "etaoinshr " for b in "etaoinshrdlu .,"]
CHARS = ["<s>", "</s>"] + _SINGLE + _PAIRS[: VOCAB - 2 - len(_SINGLE)]


def char_tokenizer() -> PreTrainedTokenizerFast:
    """A char-level tokenizer whose ids >= 97 decode to two characters (stop-string overhangs)."""
    vocab = {c: i for i, c in enumerate(CHARS)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<s>"))
    tok.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<s>")


_COMMON = dict(
    vocab_size=VOCAB,
    hidden_size=64,
    intermediate_size=128,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=1024,
    bos_token_id=0,
    eos_token_id=None,
    pad_token_id=0,
    tie_word_embeddings=False,
)


def _config(kind: str):
    if kind == "llama":
        return LlamaConfig(num_hidden_layers=2, **_COMMON)
    if kind == "qwen2":
        return Qwen2Config(num_hidden_layers=2, **_COMMON)
    if kind == "qwen2_sliding":
        return Qwen2Config(
            num_hidden_layers=3, use_sliding_window=True, sliding_window=8, max_window_layers=1, **_COMMON
        )
    if kind == "gemma3":
        return Gemma3TextConfig(
            num_hidden_layers=3,
            head_dim=16,
            sliding_window=8,
            query_pre_attn_scalar=16,
            layer_types=["sliding_attention", "full_attention", "sliding_attention"],
            **_COMMON,
        )
    raise ValueError(kind)


def tiny_model(kind: str, seed: int = 0, attn: str = "sdpa", sharpen: float = 1.0):
    """A seeded random model; ``sharpen`` scales the LM head so sampling is peaked."""
    torch.manual_seed(seed)
    cfg = _config(kind)
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation=attn, dtype=torch.float32)
    if sharpen != 1.0:
        with torch.no_grad():
            model.get_output_embeddings().weight.mul_(sharpen)
    return model.eval()


def random_prompts(n: int, seed: int = 0, lo: int = 2, hi: int = 20) -> list[list[int]]:
    rng = random.Random(seed)
    return [[rng.randrange(2, VOCAB) for _ in range(rng.randint(lo, hi))] for _ in range(n)]


def plain_greedy(model, prompt: list[int], max_new_tokens: int, **kw) -> list[int]:
    ids = torch.tensor([prompt])
    out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=max_new_tokens, **kw)
    return out[0, len(prompt) :].tolist()


class OracleDrafter(ContextDrafter):
    """Knows the plain-decoding output ``ref`` and drafts trees with right and wrong
    branches from it. ``shape``: "tree", "wrong", "chain", "empty" or "mixed" (a seeded
    choice per step, with the true path at a random depth)."""

    def __init__(self, ref: list[int], shape: str = "mixed", seed: int = 0, depth: int = 5):
        super().__init__()
        self.ref, self.shape, self.depth = ref, shape, depth
        self.rng = random.Random(seed)
        self.drafts: list[Draft] = []

    def draft(self, max_nodes: int) -> Draft:
        k = len(self.context) - self.prompt_len
        truth = self.ref[k:]
        shape = self.shape
        if shape == "mixed":
            shape = self.rng.choice(["tree", "tree", "wrong", "chain", "empty", "wide"])
        d = self._build(shape, truth)
        self.drafts.append(d)
        return d

    def _wrong(self, right: int) -> int:
        """A token that is not ``right``."""
        return (right + self.rng.randrange(1, VOCAB)) % VOCAB

    def _build(self, shape: str, truth: list[int]) -> Draft:
        if shape == "empty" or not truth:
            return Draft()
        toks: list[int] = []
        parents: list[int] = []

        def add(tok: int, parent: int) -> int:
            toks.append(tok)
            parents.append(parent)
            return len(toks) - 1

        if shape == "chain":  # a deep chain: true for a while, then wrong
            good = self.rng.randint(0, min(len(truth), 12))
            parent = -1
            for t in truth[:good]:
                parent = add(t, parent)
            nxt = truth[good] if good < len(truth) else 0
            for _ in range(self.rng.randint(0 if good else 1, 4)):
                parent = add(self._wrong(nxt), parent)
                nxt = -1
        elif shape == "wrong":  # several branches, none right
            for _ in range(self.rng.randint(1, 3)):
                parent = add(self._wrong(truth[0]), -1)
                add(self._wrong(-5), parent)
        else:  # "tree"/"wide": wrong siblings, the truth to a random depth, decoy branches
            for _ in range(self.rng.randint(0, 3 if shape == "wide" else 1)):
                add(self._wrong(truth[0]), -1)
            depth = self.rng.randint(1, min(len(truth), self.depth))
            parent, path = -1, []
            for i, t in enumerate(truth[:depth]):
                parent = add(t, parent)
                path.append(parent)
                if i + 1 < len(truth) and self.rng.random() < 0.4:  # a wrong child
                    add(self._wrong(truth[i + 1]), parent)
            if len(path) > 1 and self.rng.random() < 0.5:  # a decoy subtree mid-path
                i = self.rng.randrange(len(path) - 1)
                q = add(self._wrong(truth[i + 1]), path[i])
                add(self._wrong(-5), q)
        n = len(toks)
        depths = Draft(toks, parents, [1.0] * n).depths()
        probs = [0.9**d for d in depths]
        return Draft(toks, parents, probs, float(sum(probs)), 1)


class TopKDrafter(ContextDrafter):
    """Drafts from the model itself (a deterministic function of the context): at each of
    two levels the ``k`` most likely tokens plus one unlikely token."""

    def __init__(self, model, k: int = 3):
        super().__init__()
        self.model, self.k = model, k

    @torch.no_grad()
    def _top(self, ctx: list[int]) -> list[int]:
        logits = self.model(torch.tensor([ctx])).logits[0, -1]
        order = logits.argsort(descending=True).tolist()
        return order[: self.k] + [order[-1]]

    def draft(self, max_nodes: int) -> Draft:
        toks, parents = [], []
        for t in self._top(self.context):
            toks.append(t)
            parents.append(-1)
            me = len(toks) - 1
            if t == toks[0]:
                for u in self._top(self.context + [t]):
                    toks.append(u)
                    parents.append(me)
        probs = [0.5 if p < 0 else 0.25 for p in parents]
        return Draft(toks, parents, probs, float(sum(probs)), 1)


# --------------------------------------------------------------------------------------
# Helpers for test_fidelity.py and test_sampling_joint.py: tokenizers with other decoders
# (SentencePiece-style Metaspace, byte-level), Llama models of any vocabulary or context,
# and a model whose greedy continuation follows a given token map.

SP_WORDS = [
    "the",
    "cat",
    "sat",
    "on",
    "mat",
    "and",
    "is",
    "it",
    "to",
    "of",
    "in",
    "for",
    "that",
    "was",
    "he",
    "she",
    "with",
    "as",
    "at",
    "by",
    "this",
    "had",
    "not",
    "but",
]


def sentencepiece_tokenizer() -> PreTrainedTokenizerFast:
    """A SentencePiece-style Unigram tokenizer (Metaspace "▁", prepend_scheme "always") of
    about 300 pieces: specials, single characters with and without "▁", "▁word" pieces
    and frequent two-letter pieces. Decoding drops the first piece's leading space."""
    pieces: list[tuple[str, float]] = [("<unk>", 0.0), ("<s>", 0.0), ("</s>", 0.0), ("▁", -3.0)]
    seen = {p for p, _ in pieces}

    def add(piece: str, score: float) -> None:
        if piece not in seen:
            seen.add(piece)
            pieces.append((piece, score))

    for c in string.ascii_letters + string.digits + string.punctuation:
        add(c, -5.0)
        add("▁" + c, -5.5)
    for w in SP_WORDS:
        add("▁" + w, -1.0)
        add(w, -2.0)
    for a in "etaoinshr":
        for b in "etaoinshrdlu":
            add(a + b, -4.0)
    tok = Tokenizer(models.Unigram(pieces, unk_id=0, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>")


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character table (what ByteLevel pre-tokenizers use)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def byte_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level tokenizer whose 256 tokens are the bytes themselves (token id = byte
    value): multi-byte UTF-8 characters span several tokens."""
    vocab = {ch: b for b, ch in _bytes_to_unicode().items()}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tok)


def llama_model(
    vocab_size: int = VOCAB,
    seed: int = 0,
    attn: str = "sdpa",
    max_position_embeddings: int = 1024,
    sharpen: float = 1.0,
):
    """A seeded tiny Llama like ``tiny_model("llama")`` with another vocabulary or context."""
    torch.manual_seed(seed)
    kw = dict(_COMMON, vocab_size=vocab_size, max_position_embeddings=max_position_embeddings)
    model = AutoModelForCausalLM.from_config(
        LlamaConfig(num_hidden_layers=2, **kw), attn_implementation=attn, dtype=torch.float32
    )
    if sharpen != 1.0:
        with torch.no_grad():
            model.get_output_embeddings().weight.mul_(sharpen)
    return model.eval()


def steer_greedy(model, next_of: dict[int, int], seed: int = 0, scale: float = 30.0):
    """Make greedy decoding follow ``next_of`` (token -> next token; others map to
    ``(7 t + 3) % V``): large random input embeddings dominate the residual stream, and
    LM-head row u is the sum of the normalised embeddings of the tokens mapped to u."""
    vocab = model.get_input_embeddings().weight.shape[0]
    mapping = {t: (7 * t + 3) % vocab for t in range(vocab)}
    mapping.update(next_of)
    with torch.no_grad():
        emb = model.get_input_embeddings().weight
        emb.copy_(torch.randn(emb.shape, generator=torch.Generator().manual_seed(seed)))
        unit = emb / emb.norm(dim=1, keepdim=True)
        head = torch.zeros_like(model.get_output_embeddings().weight)
        for t, u in mapping.items():
            head[u] += unit[t]
        model.get_output_embeddings().weight.copy_(head * scale)
    return model
