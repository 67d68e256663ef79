"""Prompts to token ids: the one place that applies chat templates.

``sufdec generate``, the session and the generation benchmark all encode prompts here, so
a prompt means the same token ids wherever it is sent. A request is a text or a mapping
with ``"prompt"`` (text) or ``"messages"`` (a chat, as ``apply_chat_template`` takes it).
With ``chat=True`` and a tokenizer that has a chat template, the messages go through it
with the generation prompt added; otherwise the texts are joined by newlines and
tokenized as they are (the tokenizer adds its own special tokens, as ``tokenizer(text)``
does). Nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Union

Request = Union[str, Mapping[str, Any]]


def messages_of(request: Request, system: str | None = None) -> list[dict]:
    """The chat messages of a request, with ``system`` first unless it has a system turn."""
    if isinstance(request, str):
        messages = [{"role": "user", "content": request}]
    elif "messages" in request:
        messages = [dict(m) for m in request["messages"]]
    elif "prompt" in request:
        messages = [{"role": "user", "content": request["prompt"]}]
    else:
        raise ValueError('a request needs "prompt" (text) or "messages" (a list)')
    if system and not any(m.get("role") == "system" for m in messages):
        messages.insert(0, {"role": "system", "content": system})
    return messages


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def encode_prompt(tokenizer: Any, request: Request, *, chat: bool = True, system: str | None = None) -> list[int]:
    """Token ids of one request, through the chat template unless ``chat`` is False or the
    tokenizer has none."""
    messages = messages_of(request, system)
    if chat and has_chat_template(tokenizer):
        return list(
            tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False)
        )
    text = "\n".join(str(m.get("content", "")) for m in messages)
    return list(tokenizer(text)["input_ids"])
