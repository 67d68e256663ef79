"""Rebuild data/spider_demo/: the default model's own greedy answers to Spider questions.

The demo indexes corpus.jsonl (what the model answered for the train questions) and then
generates prompts.jsonl (held-out questions on the same schemas). Run from the repo root:
    .venv/bin/python scripts/make_demo_data.py
"""

import json
import os
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from sufdec import models
from sufdec.bench import datasets
from sufdec.engine.batch_generate import generate_plain_batched
from sufdec.prompts import encode_prompt
from sufdec.session import default_model

DB_IDS = ["concert_singer", "pets_1", "poker_player", "singer", "orchestra"]
OUT = Path("data/spider_demo")


def main() -> None:
    root = models.default_cache_root(os.environ)
    path = default_model(root, print)
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    examples = datasets.load_spider(datasets.fetch("spider", root), db_ids=DB_IDS)
    n_train = int(len(examples) * 0.8)
    train, held = examples[:n_train], examples[n_train:]
    prompts = [encode_prompt(tok, e.prompt) for e in train]
    outs = generate_plain_batched(
        model, tok, prompts, max_new_tokens=128, batch_size=8, on_batch=lambda n: print(".", end="", flush=True)
    )
    OUT.mkdir(parents=True, exist_ok=True)
    with open(OUT / "corpus.jsonl", "w") as f:
        for e, o in zip(train, outs):
            f.write(json.dumps({"id": e.id, "prompt": e.prompt, "response": tok.decode(o)}) + "\n")
    with open(OUT / "prompts.jsonl", "w") as f:
        for e in held:
            f.write(json.dumps({"id": e.id, "prompt": e.prompt}) + "\n")
    print(f"\n{len(train)} corpus records, {len(held)} held-out prompts -> {OUT}")


if __name__ == "__main__":
    main()
