"""End-to-end generation benchmark: plain decoding, prompt lookup and suffix drafting, interleaved.

One process loads the model once, builds a fresh store from a workload's train split (the
model's own greedy outputs, or the dataset's references), then decodes each held-out
prompt with every method in turn (the order rotates prompt by prompt), so that load from
other processes hits all methods alike. Every method's greedy output is checked against
plain ``generate()``'s. See docs/BENCHMARKS.md for the protocol and the figures.

Methods
- ``vanilla``: transformers ``model.generate(do_sample=False)``; the baseline of every ratio.
- ``pld``: transformers prompt lookup decoding (``prompt_lookup_num_tokens``).
- ``suffix-tree``: SpeculativeGenerator + SuffixDrafter, merged mode, tree drafts.
- ``suffix-path``: the same with single-path drafts.
- ``suffix-paper``: the published algorithm (factor 4, min probability 0.1, tree drafts).
- ``sufdec-off``: sufdec's own decode loop with no drafts (its overhead over ``vanilla``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import statistics
import subprocess
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from sufdec.bench.datasets import Example

METHODS = ("vanilla", "pld", "suffix-path", "suffix-tree", "suffix-paper", "sufdec-off")
DEFAULT_METHODS = ("vanilla", "pld", "suffix-path", "suffix-tree")
WORKLOADS = ("spider", "humaneval", "sharegpt")
TRAIN_FRACTION = 0.8
RESULT_VERSION = 1

# progress(label, total) -> advance(k); None: silent
Progress = Optional[Callable[[str, int], Callable[[int], None]]]


@dataclass(frozen=True)
class BenchSettings:
    """One benchmark run. ``train``/``eval`` are upper bounds: a workload may have fewer."""

    workload: str                       # spider | humaneval | sharegpt | path to a JSONL file
    model: Optional[str] = None         # None: the default model
    train: int = 256
    eval: int = 32
    methods: tuple[str, ...] = DEFAULT_METHODS
    max_new_tokens: int = 256
    corpus: str = "model"               # model: the model's own greedy outputs; reference: the dataset's
    dtype: str = "float32"
    device: str = "cpu"                 # cpu | cuda | auto (cuda when there is one)
    online: bool = False                # add each finished held-out output to the store
    max_spec_tokens: int = 32
    sizing: str = "cost"                # cost | fixed (draft sizing of the suffix methods)
    pld_tokens: int = 10
    max_prompt_tokens: int = 2048       # longer prompts are skipped (CPU prefill cost)
    batch_size: int = 8                 # corpus generation batch on CPU (x8 on a GPU)
    warmup: bool = True                 # one untimed run of every method first

    def __post_init__(self) -> None:
        object.__setattr__(self, "methods", tuple(self.methods))
        bad = [m for m in self.methods if m not in METHODS and not m.startswith("suffix-tree@")]
        if bad:
            raise ValueError(f"unknown method(s) {', '.join(bad)}; choose from {', '.join(METHODS)}")
        if self.corpus not in ("model", "reference"):
            raise ValueError("corpus must be model or reference")
        if self.sizing not in ("cost", "fixed"):
            raise ValueError("sizing must be cost or fixed")
        if self.train < 0 or self.eval < 1 or self.max_new_tokens < 1:
            raise ValueError("need train >= 0, eval >= 1, max_new_tokens >= 1")
        if "vanilla" not in self.methods:  # every ratio and the losslessness check need it
            object.__setattr__(self, "methods", ("vanilla",) + self.methods)


# ---------------------------------------------------------------- workloads

def read_jsonl_workload(path: Path) -> list[Example]:
    """A FILE.jsonl workload: one ``{"prompt", "reference"|"completion"|"output"|"response"}`` a line."""
    from sufdec.jsonl import read_objects

    out = []
    for n, rec in read_objects(path, lambda r: isinstance(r.get("prompt"), str), 'an object with a "prompt" string'):
        ref = next((rec[k] for k in ("reference", "completion", "output", "response")
                    if isinstance(rec.get(k), str)), "")
        out.append(Example(str(rec.get("id", f"{path.stem}-{n}")), rec["prompt"], ref))
    if not out:
        raise ValueError(f"{path} holds no prompts")
    return out


def load_workload(name: str, train: int, eval_n: int) -> list[Example]:
    """All examples a run may use, in the workload's order (the split is by index)."""
    from sufdec.bench import datasets

    path = Path(name).expanduser()
    if name not in WORKLOADS:
        if not path.is_file():
            raise FileNotFoundError(f"no workload {name!r}: use spider, humaneval, sharegpt or a JSONL file")
        return read_jsonl_workload(path)
    if name == "sharegpt":  # 17k conversations: read only as many as the split needs (+ room for skips)
        need = max(math.ceil(train / TRAIN_FRACTION), math.ceil(eval_n / (1 - TRAIN_FRACTION)), 10)
        return datasets.load_sharegpt(limit=int(need * 1.25))
    return datasets.load(name)


def split(examples: Sequence[Any], train: int, eval_n: int) -> tuple[list[Any], list[Any]]:
    """Split by index 80/20 (as the replay benchmark does); take the first ``train`` / ``eval_n``."""
    boundary = int(len(examples) * TRAIN_FRACTION)
    if len(examples) > 1:
        boundary = min(max(boundary, 1), len(examples) - 1)
    return list(examples[:boundary][:train]), list(examples[boundary:][:eval_n])


def encode_prompt(tokenizer: Any, text: str) -> list[int]:
    """Prompt ids through the chat template when the tokenizer has one (as ``sufdec generate``)."""
    if getattr(tokenizer, "chat_template", None):
        return list(tokenizer.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                                  tokenize=True, return_dict=False))
    return list(tokenizer(text)["input_ids"])


@dataclass
class Item:
    example: Example
    prompt_ids: list[int]


def prepare_items(tokenizer: Any, examples: Sequence[Example], max_prompt: int, context: Optional[int],
                  max_new: int) -> tuple[list[Item], int]:
    """Tokenized examples, dropping those whose prompt is too long; (items, skipped)."""
    items, skipped = [], 0
    for ex in examples:
        ids = encode_prompt(tokenizer, ex.prompt)
        if len(ids) > max_prompt or (context is not None and len(ids) + max_new > context):
            skipped += 1
            continue
        items.append(Item(ex, ids))
    return items, skipped


# ---------------------------------------------------------------- the corpus

def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def default_corpus_cache() -> Path:
    from sufdec import models

    return models.cache_dir() / "bench" / "corpora"


def model_identity(model: Any, spec: str) -> str:
    """Name + a hash of the config, so that a changed folder does not reuse stale outputs."""
    cfg = model.config.to_json_string(use_diff=False) if hasattr(model.config, "to_json_string") else ""
    return f"{Path(spec).name}:{hashlib.sha256(cfg.encode()).hexdigest()[:12]}"


def model_outputs(model: Any, tokenizer: Any, items: Sequence[Item], *, cache_file: Path, max_new_tokens: int,
                  batch_size: int, progress: Progress = None) -> list[list[int]]:
    """The model's greedy outputs (EOS excluded) for ``items``, from the cache where present.

    The cache is a JSONL file of ``{"prompt": digest of the prompt ids, "tokens": [...]}``;
    missing outputs are generated in batches (plain greedy) and appended.
    """
    from sufdec.engine.batch_generate import generate_plain_batched

    known: dict[str, list[int]] = {}
    if cache_file.is_file():
        for line in cache_file.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
                known[rec["prompt"]] = rec["tokens"]
            except (json.JSONDecodeError, KeyError):
                continue  # a line cut short by a killed run: regenerate it
    keys = [_digest(it.prompt_ids) for it in items]
    missing = [i for i, k in enumerate(keys) if k not in known]
    if missing:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        advance = progress("corpus: plain greedy", len(missing)) if progress else None
        for start in range(0, len(missing), batch_size * 4):  # save as we go: a killed run keeps its work
            chunk = missing[start:start + batch_size * 4]
            outs = generate_plain_batched(model, tokenizer, [items[i].prompt_ids for i in chunk],
                                          max_new_tokens=max_new_tokens, batch_size=batch_size, on_batch=advance)
            with open(cache_file, "a", encoding="utf-8") as f:
                for i, toks in zip(chunk, outs):
                    known[keys[i]] = toks
                    f.write(json.dumps({"prompt": keys[i], "tokens": toks}) + "\n")
    return [known[k] for k in keys]


def reference_outputs(tokenizer: Any, items: Sequence[Item]) -> list[list[int]]:
    return [list(tokenizer(it.example.reference, add_special_tokens=False)["input_ids"]) for it in items]


def build_store(path: Path, tokenizer: Any, name: str, outputs: Sequence[Sequence[int]]) -> Any:
    """A fresh store at ``path`` holding ``outputs`` (whatever was there is replaced)."""
    import shutil

    from sufdec.engine.session import tokenizer_info
    from sufdec.store import SequenceRecord, Store

    if path.exists():
        shutil.rmtree(path)
    store = Store.open(path, tokenizer_info(tokenizer, name))
    store.add_many(SequenceRecord(list(t), {"from": "bench", "n": i}) for i, t in enumerate(outputs) if t)
    return store


# ---------------------------------------------------------------- one run of one method

@dataclass
class Run:
    """What one method did on one prompt."""

    tokens: list[int]
    elapsed_s: float
    steps: int                       # decode steps (HF methods: forward calls, prefill included)
    prefill_s: float = 0.0           # HF methods: the first forward (prompt -> first token); ours: prompt[:-1]
    drafted: int = 0
    verified: int = 0
    accepted: int = 0
    draft_s: float = 0.0
    bookkeeping_s: float = 0.0
    forward_s: float = 0.0
    observe_s: float = 0.0
    by_match_len: dict[int, list[int]] = field(default_factory=dict)  # len -> [accepted, steps]


class _CountForwards:
    """Counts forward calls of a module (a forward hook; generate() itself is untouched)."""

    def __init__(self, model: Any) -> None:
        self.n = 0
        self.first_end = 0.0
        self._h = model.register_forward_hook(self._hook)

    def _hook(self, *_a: Any) -> None:
        self.n += 1
        if self.n == 1:
            self.first_end = time.perf_counter()

    def close(self) -> None:
        self._h.remove()


def _hf_generate(model: Any, prompt_ids: list[int], max_new_tokens: int, pld_tokens: Optional[int],
                 pad_id: int) -> tuple[list[int], float, int, float]:
    """(new tokens, seconds, forward calls, seconds to the end of the first forward) of
    transformers' own greedy generate()."""
    import torch

    ids = torch.tensor([prompt_ids], dtype=torch.long, device=next(model.parameters()).device)  # [1, P]
    extra = {"prompt_lookup_num_tokens": pld_tokens} if pld_tokens else {}
    counter = _CountForwards(model)
    try:
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                 max_new_tokens=max_new_tokens, pad_token_id=pad_id, **extra)
        elapsed = time.perf_counter() - t0
    finally:
        counter.close()
    return out[0, len(prompt_ids):].tolist(), elapsed, counter.n, max(counter.first_end - t0, 0.0)


class _Recording:
    """Wraps a drafter to note each draft's match length against the step it was made for."""

    def __init__(self, inner: Any, log: list[tuple[int, int]]) -> None:
        self.inner, self.log, self.step = inner, log, 0

    def begin(self, prompt_ids: list[int]) -> None:
        self.step = 0
        self.inner.begin(prompt_ids)

    def draft(self, max_nodes: int) -> Any:
        d = self.inner.draft(max_nodes)
        self.log.append((self.step, int(d.match_len) if len(d) else -1))
        return d

    def observe(self, new_ids: list[int]) -> None:
        self.step += 1
        self.inner.observe(new_ids)

    def end(self, output_ids: list[int], finished: bool) -> None:
        self.inner.end(output_ids, finished)


class MethodRunner:
    """Runs one named method on a prompt; suffix methods draft from ``tree_of()`` (a SuffixIndex)."""

    def __init__(self, name: str, model: Any, tokenizer: Any, settings: BenchSettings,
                 tree_of: Callable[[], Any]) -> None:
        from sufdec.drafters.suffix import SuffixDrafter, SuffixDrafterConfig
        from sufdec.engine.generator import GenerationConfig, SpeculativeGenerator

        self.name, self.model, self.settings = name, model, settings
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self._log: list[tuple[int, int]] = []
        self.generator = None
        if name in ("vanilla", "pld"):
            return
        base = name.split("@")[0]
        if base == "suffix-paper":
            dcfg = SuffixDrafterConfig.paper(max_spec_tokens=settings.max_spec_tokens)
        else:
            dcfg = SuffixDrafterConfig(use_tree=base != "suffix-path", max_spec_tokens=settings.max_spec_tokens)

        def factory() -> Any:
            return _Recording(SuffixDrafter(tree_of(), dcfg, learn=None), self._log)

        spec = "off" if base == "sufdec-off" else "tree"
        self.config = GenerationConfig(max_new_tokens=settings.max_new_tokens, spec=spec,
                                       max_spec_tokens=settings.max_spec_tokens, draft_sizing=settings.sizing)
        self.generator = SpeculativeGenerator(model, tokenizer, None if spec == "off" else factory,
                                              cost_model="auto" if settings.sizing == "cost" else None)

    def run(self, prompt_ids: list[int]) -> Run:
        s = self.settings
        if self.generator is None:
            pld = s.pld_tokens if self.name == "pld" else None
            toks, elapsed, forwards, prefill = _hf_generate(self.model, prompt_ids, s.max_new_tokens, pld,
                                                            self.pad_id)
            return Run(toks, elapsed, forwards, prefill_s=prefill, forward_s=elapsed)
        self._log.clear()
        res = self.generator.generate(prompt_ids, self.config)
        run = Run(list(res.token_ids), res.elapsed_s, res.steps, prefill_s=res.prefill_s)
        for st in res.step_results:
            t = st.timings
            run.drafted += st.drafted
            run.verified += st.verified
            run.accepted += st.accepted
            run.draft_s += t.draft
            run.bookkeeping_s += t.bookkeeping
            run.forward_s += t.forward
            run.observe_s += t.observe
        for step, match_len in self._log:
            if match_len >= 0 and step < len(res.step_results):
                slot = run.by_match_len.setdefault(match_len, [0, 0])
                slot[0] += res.step_results[step].accepted
                slot[1] += 1
        return run

    def warm_up(self, prompt_ids: list[int]) -> None:
        if self.generator is not None and self.settings.sizing == "cost" and self.config.spec != "off":
            self.generator.cost_model()  # calibrates once per model/dtype, outside any timing
        self.run(prompt_ids)


# ---------------------------------------------------------------- summaries

def first_difference(a: Sequence[int], b: Sequence[int]) -> Optional[int]:
    """The first position where two token lists differ (None when equal)."""
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def _r(x: Optional[float], nd: int = 4) -> Optional[float]:
    return None if x is None else round(float(x), nd)


def summarize(name: str, runs: Sequence[Run], vanilla: Sequence[Run]) -> dict:
    """The per-method figures of results.json."""
    tokens = sum(len(r.tokens) for r in runs)
    time_s = sum(r.elapsed_s for r in runs)
    steps = sum(r.steps for r in runs)
    ours = name not in ("vanilla", "pld")
    mism = [(i, first_difference(r.tokens, v.tokens)) for i, (r, v) in enumerate(zip(runs, vanilla))]
    mism = [(i, pos) for i, pos in mism if pos is not None]
    ratios = [v.elapsed_s / r.elapsed_s for r, v in zip(runs, vanilla) if r.elapsed_s > 0]
    vt = sum(v.elapsed_s for v in vanilla)
    decode_s = time_s - sum(r.prefill_s for r in runs)
    v_decode_s = vt - sum(v.prefill_s for v in vanilla)
    per_step = (lambda x: _r(1000.0 * x / steps, 4) if steps else None) if ours else (lambda _x: None)
    verified = sum(r.verified for r in runs)
    by_len: dict[int, list[int]] = {}
    for r in runs:
        for k, (acc, n) in r.by_match_len.items():
            slot = by_len.setdefault(k, [0, 0])
            slot[0] += acc
            slot[1] += n
    return {
        "prompts": len(runs),
        "tokens": tokens,
        "time_s": _r(time_s),
        "tokens_per_s": _r(tokens / time_s if time_s else 0.0, 3),
        "ms_per_token": _r(1000.0 * time_s / tokens if tokens else None, 3),
        "steps": steps,
        "tau": _r(tokens / steps if steps else None),
        "acceptance_rate": _r(sum(r.accepted for r in runs) / verified if verified else None) if ours else None,
        "drafted_per_step": _r(sum(r.drafted for r in runs) / steps if steps else None, 3) if ours else None,
        "verified_per_step": _r(verified / steps if steps else None, 3) if ours else None,
        "draft_ms_per_step": per_step(sum(r.draft_s for r in runs)),
        "bookkeeping_ms_per_step": per_step(sum(r.bookkeeping_s for r in runs)),
        "forward_ms_per_step": _r(1000.0 * sum(r.forward_s for r in runs) / steps if steps else None),
        "observe_ms_per_step": per_step(sum(r.observe_s for r in runs)),
        "speedup_median": _r(statistics.median(ratios) if ratios else None),
        "speedup_total": _r(vt / time_s if time_s else None),
        "prefill_share": _r(sum(r.prefill_s for r in runs) / time_s if time_s else None),
        "speedup_decode": _r(v_decode_s / decode_s if decode_s > 0 else None),
        "mismatches": len(mism),
        "first_mismatch": {"prompt": mism[0][0], "position": mism[0][1]} if mism else None,
        "mismatch_prompts": [{"prompt": i, "position": p} for i, p in mism],
        "accepted_by_match_len": {str(k): {"mean_accepted": round(a / n, 3), "steps": n}
                                  for k, (a, n) in sorted(by_len.items())},
    }


def machine_info() -> dict:
    import torch
    import transformers

    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu, "gpu": gpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "transformers": transformers.__version__,
            "python": platform.python_version(), "platform": platform.platform()}


def git_commit() -> Optional[str]:
    try:
        here = Path(__file__).resolve().parent
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True,
                             timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5)
        return (out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")) or None
    except (OSError, subprocess.SubprocessError):
        return None


# ---------------------------------------------------------------- the benchmark

@dataclass
class Loaded:
    """A model loaded for benchmarking, with the settings' workload split and corpus."""

    model: Any
    tokenizer: Any
    model_name: str
    train: list[Item]
    held_out: list[Item]
    corpus: list[list[int]]
    skipped: int


def load_for(settings: BenchSettings, *, corpus_cache: Optional[Path] = None, progress: Progress = None,
             say: Callable[[str], None] = lambda _m: None) -> Loaded:
    """Load the model, split the workload and build (or read back) the train corpus."""
    from transformers.utils import logging as hf_logging

    from sufdec import models
    from sufdec.engine.loading import load_model

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    spec = settings.model or str(models.ensure_default_model(say))
    say(f"loading {Path(spec).name} ({settings.dtype}, {settings.device}) ...")
    model, tok = load_model(spec, device=settings.device, dtype=settings.dtype)
    device = next(model.parameters()).device
    examples = load_workload(settings.workload, settings.train, settings.eval)
    context = getattr(model.config, "max_position_embeddings", None)
    items, skipped = prepare_items(tok, examples, settings.max_prompt_tokens, context, settings.max_new_tokens)
    train, held = split(items, settings.train, settings.eval)
    if not held:
        raise ValueError(f"workload {settings.workload} leaves no held-out prompts")
    name = model_identity(model, spec)
    if settings.corpus == "reference":
        corpus = reference_outputs(tok, train)
    else:
        # outputs on another device can differ in the last bits: its own cache entry (CPU keys unchanged)
        where = [] if device.type == "cpu" else [device.type]
        key = _digest([name, Path(settings.workload).name, settings.max_new_tokens, settings.dtype, *where])
        cache = (corpus_cache or default_corpus_cache()) / f"{Path(settings.workload).stem}-{key}.jsonl"
        corpus = model_outputs(model, tok, train, cache_file=cache, max_new_tokens=settings.max_new_tokens,
                               batch_size=settings.batch_size * (1 if device.type == "cpu" else 8),
                               progress=progress)
    return Loaded(model, tok, name, train, held, corpus, skipped)


def evaluate(loaded: Loaded, settings: BenchSettings, trees: dict[str, Callable[[], Any]],
             on_output: Optional[Callable[[list[int]], None]] = None, progress: Progress = None) -> dict:
    """Decode every held-out prompt with every method, interleaved; per-method summaries.

    ``trees`` maps a method name to the function giving its global tree (suffix methods).
    ``on_output`` gets each prompt's (vanilla) output once all methods have run on it: the
    online protocol appends it to the store there, so no method drafts from its own answer.
    """
    runners = {m: MethodRunner(m, loaded.model, loaded.tokenizer, settings, trees.get(m, lambda: None))
               for m in settings.methods}
    names = list(runners)
    if settings.warmup:
        adv = progress("warm-up", len(names)) if progress else None
        for m in names:
            runners[m].warm_up(loaded.held_out[0].prompt_ids)
            if adv:
                adv(1)
    runs: dict[str, list[Run]] = {m: [] for m in names}
    prompts = []
    loads = [os.getloadavg()[0]]
    adv = progress("evaluating", len(loaded.held_out)) if progress else None
    for i, item in enumerate(loaded.held_out):
        order = names[i % len(names):] + names[:i % len(names)]  # rotate: no method always goes first
        row = {"id": item.example.id, "prompt_tokens": len(item.prompt_ids), "order": order, "methods": {}}
        for m in order:
            run = runners[m].run(item.prompt_ids)
            runs[m].append(run)
            row["methods"][m] = {"new_tokens": len(run.tokens), "elapsed_s": round(run.elapsed_s, 5),
                                 "steps": run.steps}
        prompts.append(row)
        if on_output is not None:
            on_output(runs["vanilla"][-1].tokens)
        if i % 4 == 3:
            loads.append(os.getloadavg()[0])
        if adv:
            adv(1)
    loads.append(os.getloadavg()[0])
    sized = {m: r.generator for m, r in runners.items()
             if r.generator is not None and settings.sizing == "cost" and r.config.spec != "off"}
    costs = next((g.cost_model() for g in sized.values()), None)
    calibrations = {m: g.acceptance.table() for m, g in sized.items() if g.acceptance is not None}
    return {"methods": {m: summarize(m, runs[m], runs["vanilla"]) for m in names},
            "acceptance_calibration": calibrations,
            "cost_model": None if costs is None else {"ks": list(costs.ks),
                                                      "costs": [round(c, 3) for c in costs.costs]},
            "prompts": prompts, "load_avg_1m": {"min": min(loads), "max": max(loads),
                                                "mean": round(statistics.mean(loads), 2)}}


def _header(settings: BenchSettings, loaded: Loaded) -> dict:
    return {
        "version": RESULT_VERSION,
        "workload": Path(settings.workload).stem if settings.workload not in WORKLOADS else settings.workload,
        "settings": asdict(settings),
        "model": loaded.model_name,
        "dtype": settings.dtype,
        "protocol": "online" if settings.online else "frozen",
        "commit": git_commit(),
        "machine": machine_info(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "train": len(loaded.train),
        "eval": len(loaded.held_out),
        "skipped_long_prompts": loaded.skipped,
        "corpus": {"source": settings.corpus, "records": len(loaded.corpus),
                   "tokens": sum(len(c) for c in loaded.corpus)},
    }


def run_bench(settings: BenchSettings, out: Optional[Path] = None, *, corpus_cache: Optional[Path] = None,
              progress: Progress = None, say: Callable[[str], None] = lambda _m: None,
              plots: bool = True) -> dict:
    """The whole benchmark; writes results.json (and plots) under ``out`` when given."""
    import tempfile

    loaded = load_for(settings, corpus_cache=corpus_cache, progress=progress, say=say)
    with tempfile.TemporaryDirectory(prefix="sufdec-bench-") as tmp:
        store_path = (out / "store") if out is not None else Path(tmp) / "store"
        store = build_store(store_path, loaded.tokenizer, loaded.model_name.split(":")[0], loaded.corpus)
        try:
            learn = (lambda toks: store.append(toks, source={"from": "bench-online"})) if settings.online else None
            say(f"store: {len(store)} outputs; {len(loaded.held_out)} held-out prompts x "
                f"{len(settings.methods)} methods")
            trees = {m: (lambda: store.tree) for m in settings.methods}
            result = _header(settings, loaded)
            result.update(evaluate(loaded, settings, trees, on_output=learn, progress=progress))
        finally:
            store.close()
    result["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    if out is not None:
        write_results(result, out, plots=plots)
    return result


def run_scaling(settings: BenchSettings, sizes: Sequence[int], out: Optional[Path] = None, *,
                corpus_cache: Optional[Path] = None, progress: Progress = None,
                say: Callable[[str], None] = lambda _m: None, plots: bool = True) -> dict:
    """tau, speedup and drafting time of ``suffix-tree`` for growing corpora, interleaved.

    Each size k drafts from an in-memory tree over the first k train outputs; all sizes and
    ``vanilla`` run on each held-out prompt in turn, so the ratios share the same load.
    """
    from sufdec.suffix import SuffixIndex

    settings = replace(settings, train=max(sizes), methods=("vanilla",))
    loaded = load_for(settings, corpus_cache=corpus_cache, progress=progress, say=say)
    sizes = sorted({min(k, len(loaded.corpus)) for k in sizes})
    trees = {}
    for k in sizes:
        index = SuffixIndex(max_depth=64)
        unique = {tuple(t): i for i, t in reversed(list(enumerate(loaded.corpus[:k]))) if t}  # as the store dedups
        index.add_many((i, list(t)) for t, i in sorted(unique.items(), key=lambda kv: kv[1]))
        trees[f"suffix-tree@{k}"] = (lambda index=index: index)
    settings = replace(settings, methods=("vanilla", *trees))
    result = _header(settings, loaded)
    result["sizes"] = sizes
    say(f"scaling: corpus sizes {sizes}; {len(loaded.held_out)} held-out prompts")
    result.update(evaluate(loaded, settings, trees, progress=progress))
    result["scaling"] = [
        {"corpus": k, "tokens": sum(len(t) for t in loaded.corpus[:k]),
         **{f: result["methods"][f"suffix-tree@{k}"][f] for f in
            ("tau", "speedup_median", "speedup_total", "draft_ms_per_step", "acceptance_rate", "mismatches")}}
        for k in sizes
    ]
    result["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    if out is not None:
        write_results(result, out, plots=plots)
    return result


def write_results(result: dict, out: Path, *, plots: bool = True) -> None:
    out.mkdir(parents=True, exist_ok=True)
    if plots:
        from sufdec.bench import plots as plot_mod

        result["plots"] = plot_mod.plots_for(result, out)
    (out / "results.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
