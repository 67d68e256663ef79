"""Training text for the exit layer: the model's own past outputs, from a store or a JSONL file.

From a store: every stored output (token ids as they were generated). From a JSONL file
(the shapes ``sufdec index`` reads): ``{"prompt", "completion"|"response"|"output"}``
becomes the prompt through the chat template followed by the completion, so the exit layer
learns in the context it will draft in; ``{"messages"}`` is the whole chat through the
template; ``{"text"}`` and ``{"token_ids"}`` are taken as they are. At most ``max_tokens``
tokens are read (training time grows with them).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sufdec.jsonl import read_objects
from sufdec.prompts import encode_prompt

_OUTPUT_KEYS = ("completion", "response", "output")


def _accept(rec: Any) -> bool:
    return any(k in rec for k in ("text", "messages", "token_ids", "prompt"))


def _record_ids(tokenizer: Any, rec: dict) -> list[int]:
    if isinstance(rec.get("token_ids"), list):
        return [int(t) for t in rec["token_ids"]]
    if isinstance(rec.get("messages"), list):
        return list(tokenizer.apply_chat_template(rec["messages"], tokenize=True, return_dict=False))
    if isinstance(rec.get("prompt"), str):
        out = next((rec[k] for k in _OUTPUT_KEYS if isinstance(rec.get(k), str)), "")
        return encode_prompt(tokenizer, rec["prompt"]) + list(tokenizer(out, add_special_tokens=False)["input_ids"])
    if isinstance(rec.get("text"), str):
        return list(tokenizer(rec["text"], add_special_tokens=False)["input_ids"])
    return []


def _capped(seqs: Iterator[list[int]], max_tokens: int) -> list[list[int]]:
    out, total = [], 0
    for ids in seqs:
        if not ids:
            continue
        out.append(ids[: max(max_tokens - total, 0)])
        total += len(out[-1])
        if total >= max_tokens:
            break
    return out


def sequences_from_jsonl(path: Path, tokenizer: Any, max_tokens: int) -> list[list[int]]:
    """Token ids of the records of a JSONL file (see the module docstring)."""
    expected = 'an object with "text", "messages", "token_ids" or "prompt" (+ "completion")'
    recs = (_record_ids(tokenizer, rec) for _, rec in read_objects(Path(path), _accept, expected))
    return _capped(recs, max_tokens)


def sequences_from_store(store: Any, max_tokens: int) -> list[list[int]]:
    """The outputs a store holds, oldest first."""
    return _capped((list(s.tokens) for s in store.iter_sequences()), max_tokens)
