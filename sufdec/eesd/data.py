"""Training text for the exit layer: the model's own past outputs, from a store or a JSONL file.

From a store: every stored output (token ids as they were generated). From a JSONL file
(the shapes ``sufdec index`` reads): ``{"prompt", "completion"|"response"|"output"}``
becomes the prompt through the chat template followed by the completion, so the exit layer
learns in the context it will draft in, with the loss on the completion's positions only;
``{"messages"}`` is the whole chat through the template; ``{"text"}`` and ``{"token_ids"}`` are taken as they are, and
``{"prompt_token_ids", "token_ids"}`` is a prompt and an output as token ids (exactly what
the model read and wrote; ``sufdec bench`` corpora convert to it). A prompt is cut to its
last ``PROMPT_TAIL`` tokens: training chunks are that long, so older prompt text never
reaches an output position's context and would only cost teacher time. At most
``max_tokens`` tokens are read (training time grows with them).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sufdec.jsonl import Skipped, read_objects
from sufdec.prompts import encode_prompt

_OUTPUT_KEYS = ("completion", "response", "output")
PROMPT_TAIL = 128  # = TrainSettings.chunk


def _accept(rec: Any) -> bool:
    return any(k in rec for k in ("text", "messages", "token_ids", "prompt"))


def _record_ids(tokenizer: Any, rec: dict) -> tuple[list[int], int]:
    """(token ids, index of the first output token) of one record."""
    if isinstance(rec.get("token_ids"), list):
        prompt = rec.get("prompt_token_ids")
        prompt = [int(t) for t in prompt] if isinstance(prompt, list) else []
        return prompt + [int(t) for t in rec["token_ids"]], len(prompt)
    if isinstance(rec.get("messages"), list):
        return list(tokenizer.apply_chat_template(rec["messages"], tokenize=True, return_dict=False)), 0
    if isinstance(rec.get("prompt"), str):
        out = next((rec[k] for k in _OUTPUT_KEYS if isinstance(rec.get(k), str)), "")
        prompt = encode_prompt(tokenizer, rec["prompt"])
        return prompt + list(tokenizer(out, add_special_tokens=False)["input_ids"]), len(prompt)
    if isinstance(rec.get("text"), str):
        return list(tokenizer(rec["text"], add_special_tokens=False)["input_ids"]), 0
    return [], 0


def _capped(seqs: Iterator[tuple[list[int], int]], max_tokens: int) -> list[tuple[list[int], int]]:
    out, total = [], 0
    for ids, first in seqs:
        if len(ids) <= first:
            continue
        if first > PROMPT_TAIL:
            ids, first = ids[first - PROMPT_TAIL :], PROMPT_TAIL
        out.append((ids[: max(max_tokens - total, 0)], first))
        total += len(out[-1][0])
        if total >= max_tokens:
            break
    return out


def sequences_from_jsonl(
    path: Path, tokenizer: Any, max_tokens: int, skipped: Skipped | None = None
) -> list[tuple[list[int], int]]:
    """Token ids of the records of a JSONL file (see the module docstring); a line that
    cannot be used goes to ``skipped`` with its number (None: ValueError)."""
    expected = 'an object with "text", "messages", "token_ids" or "prompt" (+ "completion")'
    recs = (_record_ids(tokenizer, rec) for _, rec in read_objects(Path(path), _accept, expected, skipped=skipped))
    return _capped(recs, max_tokens)


def sequences_from_store(store: Any, max_tokens: int) -> list[tuple[list[int], int]]:
    """The outputs a store holds, oldest first (every token an output token)."""
    return _capped(((list(s.tokens), 0) for s in store.iter_sequences()), max_tokens)
