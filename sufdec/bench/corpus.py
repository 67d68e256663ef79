"""The train corpus a benchmark drafts from: the model's own outputs (cached) or the references.

The store of a benchmark run holds what the model would have produced for the train
prompts (its own greedy outputs, the default) or the dataset's reference outputs.
Generating the model's outputs is the slow part of a run on CPU, so they are cached in a
JSONL file per (model identity, workload, length cap, dtype, device kind), under
``default_corpus_cache(cache_root)`` unless another folder is given, and a killed run
keeps what it generated. ``build_store`` and ``build_index`` turn a corpus into what the
suffix methods draft from: a fresh store on disk, or an in-memory tree (scaling study).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any, Sequence

from sufdec.bench.settings import Progress
from sufdec.bench.workloads import Item


def digest(obj: Any) -> str:
    """A short stable hash of a JSON-able object (cache keys)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def default_corpus_cache(cache_root: Path) -> Path:
    """Where generated corpora are cached under sufdec's cache root."""
    return Path(cache_root) / "bench" / "corpora"


def model_identity(model: Any, spec: str) -> str:
    """Name + a hash of the config, so that a changed folder does not reuse stale outputs."""
    cfg = model.config.to_json_string(use_diff=False) if hasattr(model.config, "to_json_string") else ""
    return f"{Path(spec).name}:{hashlib.sha256(cfg.encode()).hexdigest()[:12]}"


def corpus_cache_file(
    folder: Path, *, model_name: str, workload: str, max_new_tokens: int, dtype: str, device_type: str
) -> Path:
    """The cache file of one corpus. Outputs on another device can differ in the last bits:
    a GPU gets its own entry (CPU keys are those of earlier releases)."""
    where = [] if device_type == "cpu" else [device_type]
    key = digest([model_name, Path(workload).name, max_new_tokens, dtype, *where])
    return Path(folder) / f"{Path(workload).stem}-{key}.jsonl"


def read_corpus_cache(cache_file: Path) -> dict[str, list[int]]:
    """A corpus cache file as {prompt digest: output ids}; lines cut short are skipped."""
    known: dict[str, list[int]] = {}
    if cache_file.is_file():
        for line in cache_file.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
                known[rec["prompt"]] = rec["tokens"]
            except (json.JSONDecodeError, KeyError):
                continue  # a line cut short by a killed run: regenerate it
    return known


def model_outputs(
    model: Any,
    tokenizer: Any,
    items: Sequence[Item],
    *,
    cache_file: Path,
    max_new_tokens: int,
    batch_size: int,
    progress: Progress = None,
) -> list[list[int]]:
    """The model's greedy outputs (EOS excluded) for ``items``, from the cache where present.

    The cache is a JSONL file of ``{"prompt": digest of the prompt ids, "tokens": [...]}``;
    missing outputs are generated in batches (plain greedy) and appended.
    """
    from sufdec.engine.batch_generate import generate_plain_batched

    known = read_corpus_cache(cache_file)
    keys = [digest(it.prompt_ids) for it in items]
    missing = [i for i, k in enumerate(keys) if k not in known]
    if missing:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        advance = progress("corpus: plain greedy", len(missing)) if progress else None
        for start in range(0, len(missing), batch_size * 4):  # save as we go: a killed run keeps its work
            chunk = missing[start : start + batch_size * 4]
            outs = generate_plain_batched(
                model,
                tokenizer,
                [items[i].prompt_ids for i in chunk],
                max_new_tokens=max_new_tokens,
                batch_size=batch_size,
                on_batch=advance,
            )
            with open(cache_file, "a", encoding="utf-8") as f:
                for i, toks in zip(chunk, outs):
                    known[keys[i]] = toks
                    f.write(json.dumps({"prompt": keys[i], "tokens": toks}) + "\n")
    return [known[k] for k in keys]


def reference_outputs(tokenizer: Any, items: Sequence[Item]) -> list[list[int]]:
    """The dataset's reference outputs of ``items``, tokenized without special tokens."""
    return [list(tokenizer(it.example.reference, add_special_tokens=False)["input_ids"]) for it in items]


def build_store(path: Path, tokenizer: Any, name: str, outputs: Sequence[Sequence[int]]) -> Any:
    """A fresh store at ``path`` holding ``outputs`` (whatever was there is replaced)."""
    from sufdec.store import SequenceRecord, Store
    from sufdec.tokenization import tokenizer_info

    if path.exists():
        shutil.rmtree(path)
    store = Store.open(path, tokenizer_info(tokenizer, name))
    store.add_many(SequenceRecord(list(t), {"from": "bench", "n": i}) for i, t in enumerate(outputs) if t)
    return store


def build_index(outputs: Sequence[Sequence[int]], max_depth: int = 64) -> Any:
    """An in-memory tree over ``outputs``, deduplicated as the store deduplicates."""
    from sufdec.suffix import SuffixIndex

    index = SuffixIndex(max_depth=max_depth)
    unique = {tuple(t): i for i, t in reversed(list(enumerate(outputs))) if t}  # first occurrence wins
    index.add_many((i, list(t)) for t, i in sorted(unique.items(), key=lambda kv: kv[1]))
    return index
