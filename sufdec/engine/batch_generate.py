"""Batched plain greedy decoding, to build a corpus of a model's own past outputs.

SuffixDecoding learns from what the model itself wrote before; for benchmarks and the
demo that history is made by decoding a train split with plain ``generate()`` in
batches (left padding), which is much faster than one prompt at a time.
"""

from __future__ import annotations

from typing import Callable

import torch


@torch.inference_mode()
def generate_plain_batched(
    model,
    tokenizer,
    prompt_ids: list[list[int]],
    *,
    max_new_tokens: int = 256,
    batch_size: int = 8,
    on_batch: Callable[[int], None] | None = None,
) -> list[list[int]]:
    """Greedy outputs (new token ids, EOS excluded) for each prompt, in order.

    Prompts are sorted by length so that batches pad little; results come back in the
    caller's order. ``on_batch(n)`` is called after each batch with its size.
    """
    pad_id = tokenizer.pad_token_id
    if pad_id is None:
        pad_id = tokenizer.eos_token_id
    eos = model.generation_config.eos_token_id
    eos_ids = set(eos if isinstance(eos, list) else [eos]) if eos is not None else set()
    device = next(model.parameters()).device
    order = sorted(range(len(prompt_ids)), key=lambda i: len(prompt_ids[i]))
    results: list[list[int]] = [[] for _ in prompt_ids]
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        width = max(len(prompt_ids[i]) for i in idx)
        ids = torch.full((len(idx), width), pad_id, dtype=torch.long)  # [B, S]
        mask = torch.zeros((len(idx), width), dtype=torch.long)  # [B, S]
        for row, i in enumerate(idx):
            p = prompt_ids[i]
            ids[row, width - len(p) :] = torch.tensor(p, dtype=torch.long)
            mask[row, width - len(p) :] = 1
        out = model.generate(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=pad_id,
        )
        for row, i in enumerate(idx):
            new = out[row, width:].tolist()
            cut = next((k for k, t in enumerate(new) if t in eos_ids), len(new))
            results[i] = new[:cut]
        if on_batch is not None:
            on_batch(len(idx))
    return results
