"""What the vLLM benchmark runs: prompts, the model-own corpus, the store, one job per engine.

Per workload, the split is ``sufdec bench``'s (by index, 80/20; the first ``train`` / ``eval``
of each part), prompts through the model's chat template, those over ``max_model_len -
max_tokens`` skipped before the split. Four engines run one after another, each in its own
process (``child``), each with the same warm-up and then one cell per concurrency (and
phase), every cell on the same eval prompts from the same start state (``hooks``):

* ``plain``: vLLM without speculation. It also generates the corpus first, when the cache
  lacks it: the model's own greedy outputs for the train prompts, at the engine's largest
  batch; cached as JSONL under ``CACHE/corpora`` keyed by model, workload, max_tokens,
  dtype and vLLM version, so a rerun reuses it.
* ``ngram``: vLLM's prompt lookup; no history, one phase.
* ``suffix``: vLLM's ``suffix`` method (arctic-inference). Phase ``a`` (one run): its cache
  holds the corpus as if the engine had served the train requests before; phase ``b``
  (after a restart): its cache starts empty. Both learn from the eval requests as they go.
* ``sufdec``: sufdec's proposer on a store built from the corpus (``sufdec index`` of the
  same outputs), opened by a freshly started engine: that is the store warm after a
  restart (``b``) and what one run that served the train requests would hold (``a``), so
  one measurement serves both. It learns from the eval requests as it goes.

Nothing here imports vLLM: the parent process only plans, builds the store and reports.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from sufdec.bench.corpus import digest
from sufdec.bench.corpus import read_corpus_cache as read_corpus

METHODS = ("plain", "ngram", "suffix", "sufdec")
REPO = Path(__file__).resolve().parents[3]


@dataclass
class Settings:
    model: str
    out: Path
    cache: Path
    workloads: tuple[str, ...] = ("spider", "humaneval", "sharegpt")
    methods: tuple[str, ...] = METHODS
    train: int = 256
    eval: int = 32
    concurrencies: tuple[int, ...] = (1, 8, 32)
    max_tokens: int = 128
    max_model_len: int = 2048
    max_num_seqs: int = 64
    kv_cache_gib: int = 4
    ngram: dict = field(
        default_factory=lambda: {"num_speculative_tokens": 8, "prompt_lookup_min": 2, "prompt_lookup_max": 5}
    )
    suffix: dict = field(default_factory=dict)  # vLLM's defaults: depth 24, factor 1.0, min prob 0.1
    sufdec_k: int = 16
    sufdec_config: dict = field(default_factory=dict)  # SUFDEC_VLLM_CONFIG's content ({}: the defaults)
    sufdec_label: str = "sufdec"  # its name in the results (a variant: another label)
    arctic_path: str = ""  # a folder holding arctic_inference (put on the children's PYTHONPATH)
    warmup: int = 4

    def to_json(self) -> dict:
        d = asdict(self)
        d.update(out=str(self.out), cache=str(self.cache))
        return d


@dataclass
class Workload:
    name: str
    train: list[list[int]]
    eval: list[list[int]]
    skipped: int


def load_prompts(settings: Settings, name: str, cache_root: Path) -> Workload:
    """The workload's train and eval prompts as the model's chat template encodes them."""
    from transformers import AutoTokenizer

    from sufdec.bench.workloads import load_workload, prepare_items, split

    tok = AutoTokenizer.from_pretrained(settings.model, trust_remote_code=False)
    examples = load_workload(name, settings.train, settings.eval, cache_root=cache_root)
    items, skipped = prepare_items(
        tok, examples, settings.max_model_len - settings.max_tokens, settings.max_model_len, settings.max_tokens
    )
    train, held = split(items, settings.train, settings.eval)
    return Workload(name, [it.prompt_ids for it in train], [it.prompt_ids for it in held], skipped)


def model_key(model: str) -> str:
    cfg = Path(model, "config.json")
    text = cfg.read_text() if cfg.is_file() else model
    return f"{Path(model).name}:{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def corpus_file(settings: Settings, workload: str, vllm_version: str) -> Path:
    key = digest([model_key(settings.model), workload, settings.max_tokens, "float32", f"vllm-{vllm_version}"])
    return settings.cache / "corpora" / f"{workload}-{key}.jsonl"


def build_store(path: Path, model: str, outputs: list[list[int]]) -> dict:
    """A fresh store at ``path`` holding ``outputs``, as ``sufdec index --model`` makes it."""
    from sufdec.drafters.serving import store_identity
    from sufdec.store import SequenceRecord, Store

    if path.exists():
        shutil.rmtree(path)
    with Store.open(path, store_identity(model), create=True) as store:
        summary = store.add_many(SequenceRecord(list(t), {"from": "bench", "n": i}) for i, t in enumerate(outputs) if t)
        store.checkpoint(force=True)
        return {"outputs": summary.added, "duplicates": summary.duplicates, "tokens": summary.tokens_added}


def engine_args(settings: Settings, method: str) -> dict:
    if method == "plain":
        return {}
    if method == "ngram":
        return {"speculative_config": {"method": "ngram", **settings.ngram}}
    if method == "suffix":
        return {"speculative_config": {"method": "suffix", **settings.suffix}}
    if method == "sufdec":
        return {
            "speculative_config": {
                "method": "custom_class",
                "model": "sufdec.integrations.vllm.Proposer",
                "num_speculative_tokens": settings.sufdec_k,
            },
            "worker_cls": "sufdec.integrations.vllm.Worker",
        }
    raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")


def job(
    settings: Settings, wl: Workload, method: str, results: Path, corpus_path: Path, corpus: dict[str, list[int]]
) -> dict:
    """The tasks of one engine, in order."""
    tasks: list[dict] = []
    pairs = None
    if method == "plain":
        missing = [(digest(p), p) for p in wl.train if digest(p) not in corpus]
        if missing:
            tasks.append(
                {
                    "kind": "corpus",
                    "keys": [k for k, _ in missing],
                    "prompts": [p for _, p in missing],
                    "out": str(corpus_path),
                    "concurrency": settings.max_num_seqs,
                }
            )
    warm = wl.train[: settings.warmup] or wl.eval[:1]
    tasks.append({"kind": "warmup", "prompts": warm, "max_tokens": 32})
    for c in settings.concurrencies:
        if method == "suffix":
            tasks.append({"kind": "cell", "phase": "a", "concurrency": c, "inject": True})
            tasks.append({"kind": "cell", "phase": "b", "concurrency": c})
        else:
            tasks.append(
                {
                    "kind": "cell",
                    "phase": "ab" if method == "sufdec" else "-",
                    "concurrency": c,
                    "label": settings.sufdec_label if method == "sufdec" else method,
                }
            )
    if method == "suffix":
        pairs = [[p, corpus[digest(p)]] for p in wl.train if digest(p) in corpus]
    return {
        "workload": wl.name,
        "method": method,
        "model": settings.model,
        "max_tokens": settings.max_tokens,
        "max_model_len": settings.max_model_len,
        "max_num_seqs": settings.max_num_seqs,
        "eval_prompts": wl.eval,
        "settle_prompt": warm[0],
        "corpus": pairs,
        "results": str(results),
        "tasks": tasks,
        **engine_args(settings, method),
    }


def child_env(settings: Settings, store: Path | None, work: Path) -> dict[str, str]:
    env = dict(os.environ, VLLM_CPU_KVCACHE_SPACE=str(settings.kv_cache_gib), TOKENIZERS_PARALLELISM="false")
    paths = [str(REPO)] + ([settings.arctic_path] if settings.arctic_path else [])
    env["PYTHONPATH"] = os.pathsep.join(paths + [p for p in [env.get("PYTHONPATH", "")] if p])
    env.pop("SUFDEC_VLLM_CONFIG", None)
    if store is not None:
        env["SUFDEC_STORE"] = str(store)
        if settings.sufdec_config:
            config = work / f"{settings.sufdec_label}.config.json"
            work.mkdir(parents=True, exist_ok=True)
            config.write_text(json.dumps(settings.sufdec_config))
            env["SUFDEC_VLLM_CONFIG"] = str(config)
    return env


def run_child(job_data: dict, work: Path, env: dict[str, str], say: Callable[[str], None]) -> int:
    """Run one engine's job in a fresh process; its log goes to WORK/METHOD.log."""
    work.mkdir(parents=True, exist_ok=True)
    name = job_data["tasks"][-1].get("label", job_data["method"])
    job_file = work / f"{name}.job.json"
    job_file.write_text(json.dumps(job_data))
    log_file = work / f"{name}.log"
    say(f"{job_data['workload']}/{job_data['method']}: starting vLLM (log {log_file})")
    with open(log_file, "w", encoding="utf-8") as log:
        proc = subprocess.run(
            [sys.executable, "-m", "sufdec.bench.vllm.child", str(job_file)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=str(REPO),
        )
    if proc.returncode != 0:
        tail = log_file.read_text(encoding="utf-8", errors="replace").splitlines()[-15:]
        say(f"{job_data['workload']}/{job_data['method']}: vLLM exited with {proc.returncode}:\n  " + "\n  ".join(tail))
    return proc.returncode


def run_workload(
    settings: Settings, name: str, cache_root: Path, vllm_version: str, results: Path, say: Callable[[str], None]
) -> dict:
    """All engines of one workload; returns what the report needs besides the cells."""
    wl = load_prompts(settings, name, cache_root)
    say(f"{name}: {len(wl.train)} train / {len(wl.eval)} eval prompts ({wl.skipped} skipped as too long)")
    work = settings.out / name
    cpath = corpus_file(settings, name, vllm_version)
    info: dict[str, Any] = {
        "train": len(wl.train),
        "eval": len(wl.eval),
        "skipped": wl.skipped,
        "corpus_file": str(cpath),
        "failed": {},
    }
    for method in settings.methods:
        corpus = read_corpus(cpath)
        store = None
        if method in ("suffix", "sufdec") and not all(digest(p) in corpus for p in wl.train):
            info["failed"][method] = "no corpus (run plain first)"
            continue
        if method == "sufdec":
            store = work / "store"
            info["store"] = build_store(store, settings.model, [corpus[digest(p)] for p in wl.train])
        rc = run_child(job(settings, wl, method, results, cpath, corpus), work, child_env(settings, store, work), say)
        if rc != 0:
            info["failed"][method] = f"exit {rc}, see {work / (method + '.log')}"
    corpus = read_corpus(cpath)
    outs = [corpus[digest(p)] for p in wl.train if digest(p) in corpus]
    info["corpus"] = {"outputs": len(outs), "tokens": sum(map(len, outs)), "distinct": len({tuple(o) for o in outs})}
    return info
