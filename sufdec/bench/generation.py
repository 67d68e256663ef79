"""End-to-end generation benchmark: plain decoding, prompt lookup and suffix drafting, interleaved.

One process loads the model once, builds a fresh store from a workload's train split (the
model's own greedy outputs, or the dataset's references), then decodes each held-out
prompt with every method in turn (the order rotates prompt by prompt), so that load from
other processes hits all methods alike. Every method's greedy output is checked against
plain ``generate()``'s. See docs/BENCHMARKS.md for the protocol and the figures, and
``sufdec.bench.settings`` for the methods.

This module holds the two runs, ``run_bench`` and ``run_scaling``, and the steps they
share (``load_for``, ``evaluate``). Paths come in as parameters: the cache root (public
workloads, and the corpus cache unless another folder is given) and the output folder;
nothing here reads the environment.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from sufdec.bench.corpus import (
    build_index,
    build_store,
    corpus_cache_file,
    default_corpus_cache,
    model_identity,
    model_outputs,
    reference_outputs,
)
from sufdec.bench.report import RESULT_VERSION, git_commit, machine_info, summarize, write_results
from sufdec.bench.runners import MethodRunner, Run
from sufdec.bench.settings import BenchSettings, Progress, Say, method_draft
from sufdec.bench.workloads import Item, load_workload, prepare_items, split, workload_label

SCALING_FIELDS = ("tau", "speedup_median", "speedup_total", "draft_ms_per_step", "acceptance_rate", "mismatches")


def _quiet(_message: str) -> None:
    pass


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


def load_for(
    settings: BenchSettings,
    *,
    cache_root: Path,
    corpus_cache: Optional[Path] = None,
    progress: Progress = None,
    say: Say = _quiet,
) -> Loaded:
    """Load the model, split the workload and build (or read back) the train corpus.

    Public workloads are fetched under ``cache_root``; generated corpora are cached in
    ``corpus_cache`` (default: ``default_corpus_cache(cache_root)``).
    """
    from transformers.utils import logging as hf_logging

    from sufdec.engine.loading import load_model

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    say(f"loading {Path(settings.model).name} ({settings.dtype}, {settings.device}) ...")
    model, tok = load_model(
        settings.model, device=settings.device, dtype=settings.dtype, trust_remote_code=settings.trust_remote_code
    )
    device = next(model.parameters()).device
    examples = load_workload(settings.workload, settings.train, settings.eval, cache_root=cache_root)
    context = getattr(model.config, "max_position_embeddings", None)
    items, skipped = prepare_items(tok, examples, settings.max_prompt_tokens, context, settings.max_new_tokens)
    train, held = split(items, settings.train, settings.eval)
    if not held:
        raise ValueError(f"workload {settings.workload} leaves no held-out prompts")
    name = model_identity(model, settings.model)
    if settings.corpus == "reference":
        corpus = reference_outputs(tok, train)
    else:
        cache = corpus_cache_file(
            corpus_cache or default_corpus_cache(cache_root),
            model_name=name,
            workload=settings.workload,
            max_new_tokens=settings.max_new_tokens,
            dtype=settings.dtype,
            device_type=device.type,
        )
        corpus = model_outputs(
            model,
            tok,
            train,
            cache_file=cache,
            max_new_tokens=settings.max_new_tokens,
            batch_size=settings.batch_size * (1 if device.type == "cpu" else 8),
            progress=progress,
        )
    return Loaded(model, tok, name, train, held, corpus, skipped)


def _warm_up(runners: dict[str, MethodRunner], prompt_ids: list[int], progress: Progress) -> None:
    adv = progress("warm-up", len(runners)) if progress else None
    for runner in runners.values():
        runner.warm_up(prompt_ids)
        if adv:
            adv(1)


def _sizing_report(runners: dict[str, MethodRunner]) -> dict:
    """The forward-cost curve and the acceptance calibrations that cost sizing used."""
    sized = {m: r.generator for m, r in runners.items() if r.sized_by_cost}
    costs = next((g.cost_model() for g in sized.values()), None)
    return {
        "acceptance_calibration": {
            m: {src: cal.table() for src, cal in g.controls.calibrations.items()} for m, g in sized.items()
        },
        "posteriors": {
            m: {src: [round(p.a, 2), round(p.b, 2)] for src, p in g.controls.posteriors.items()}
            for m, g in sized.items()
            if g.controls.posteriors
        },
        "draft_cost": {
            m: {src: round(g.controls.draft_cost(src), 4) for src in g.controls.draft_s_per_token}
            for m, g in sized.items()
        },
        "cost_model": None if costs is None else {"ks": list(costs.ks), "costs": [round(c, 3) for c in costs.costs]},
    }


def evaluate(
    loaded: Loaded,
    settings: BenchSettings,
    trees: dict[str, Callable[[], Any]],
    on_output: Optional[Callable[[list[int]], None]] = None,
    progress: Progress = None,
    exit_drafter: Optional[Callable[[], Any]] = None,
) -> dict:
    """Decode every held-out prompt with every method, interleaved; per-method summaries.

    ``trees`` maps a method name to the function giving its global tree (suffix methods).
    ``on_output`` gets each prompt's (vanilla) output once all methods have run on it: the
    online protocol appends it to the store there, so no method drafts from its own answer.
    """
    runners = {
        m: MethodRunner(m, loaded.model, loaded.tokenizer, settings, trees.get(m, lambda: None), exit_drafter)
        for m in settings.methods
    }
    names = list(runners)
    if settings.warmup:
        _warm_up(runners, loaded.held_out[0].prompt_ids, progress)
    runs: dict[str, list[Run]] = {m: [] for m in names}
    prompts = []
    loads = [os.getloadavg()[0]]
    adv = progress("evaluating", len(loaded.held_out)) if progress else None
    for i, item in enumerate(loaded.held_out):
        order = names[i % len(names) :] + names[: i % len(names)]  # rotate: no method always goes first
        row = {"id": item.example.id, "prompt_tokens": len(item.prompt_ids), "order": order, "methods": {}}
        for m in order:
            run = runners[m].run(item.prompt_ids)
            runs[m].append(run)
            row["methods"][m] = {
                "new_tokens": len(run.tokens),
                "elapsed_s": round(run.elapsed_s, 5),
                "steps": run.steps,
            }
        prompts.append(row)
        if on_output is not None:
            on_output(runs["vanilla"][-1].tokens)
        if i % 4 == 3:
            loads.append(os.getloadavg()[0])
        if adv:
            adv(1)
    loads.append(os.getloadavg()[0])
    return {
        "methods": {m: summarize(m, runs[m], runs["vanilla"]) for m in names},
        **_sizing_report(runners),
        "prompts": prompts,
        "load_avg_1m": {"min": min(loads), "max": max(loads), "mean": round(statistics.mean(loads), 2)},
    }


def _header(settings: BenchSettings, loaded: Loaded) -> dict:
    drafts = {m: method_draft(m, settings.draft) for m in settings.methods}
    return {
        "version": RESULT_VERSION,
        "workload": workload_label(settings.workload),
        "settings": asdict(settings),
        "method_drafts": {m: asdict(d) for m, d in drafts.items() if d is not None},
        "model": loaded.model_name,
        "dtype": settings.dtype,
        "protocol": "online" if settings.online else "frozen",
        "commit": git_commit(),
        "machine": machine_info(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "train": len(loaded.train),
        "eval": len(loaded.held_out),
        "skipped_long_prompts": loaded.skipped,
        "corpus": {
            "source": settings.corpus,
            "records": len(loaded.corpus),
            "tokens": sum(len(c) for c in loaded.corpus),
        },
    }


def _finish(result: dict, out: Optional[Path], plots: bool) -> dict:
    result["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    if out is not None:
        write_results(result, out, plots=plots)
    return result


def _exit_drafter(loaded: Loaded, settings: BenchSettings, cache_root: Path, say: Say) -> Optional[Callable]:
    """The early-exit drafter factory of the ``eesd`` and ``hybrid`` methods (None when
    neither runs; for ``hybrid`` alone, also None when no exit layer is trained: it then
    drafts from the suffix trees only, as ``sufdec generate --spec hybrid`` does)."""
    bases = {m.split(":")[0] for m in settings.methods}
    if "eesd" not in bases and "hybrid" not in bases:
        return None
    from sufdec.eesd.exit_model import ExitLayerError
    from sufdec.session import exit_drafter_factory

    path = Path(settings.exit_layer) if settings.exit_layer else None
    try:
        return exit_drafter_factory(loaded.model, settings.draft.replace(spec="eesd"), cache_root, path, say)
    except ExitLayerError as exc:
        if "eesd" in bases:
            raise
        say(f"hybrid drafts from the suffix trees only: {exc}")
        return None


def run_bench(
    settings: BenchSettings,
    out: Optional[Path] = None,
    *,
    cache_root: Path,
    corpus_cache: Optional[Path] = None,
    progress: Progress = None,
    say: Say = _quiet,
    plots: bool = True,
) -> dict:
    """The whole benchmark; writes results.json, plots and the store under ``out`` when given."""
    loaded = load_for(settings, cache_root=cache_root, corpus_cache=corpus_cache, progress=progress, say=say)
    with tempfile.TemporaryDirectory(prefix="sufdec-bench-") as tmp:
        store_path = (out / "store") if out is not None else Path(tmp) / "store"
        store = build_store(store_path, loaded.tokenizer, loaded.model_name.split(":")[0], loaded.corpus)
        try:
            learn = (lambda toks: store.append(toks, source={"from": "bench-online"})) if settings.online else None
            say(
                f"store: {len(store)} outputs; {len(loaded.held_out)} held-out prompts x "
                f"{len(settings.methods)} methods"
            )
            trees = {m: (lambda: store.tree) for m in settings.methods}
            result = _header(settings, loaded)
            result.update(
                evaluate(
                    loaded,
                    settings,
                    trees,
                    on_output=learn,
                    progress=progress,
                    exit_drafter=_exit_drafter(loaded, settings, cache_root, say),
                )
            )
        finally:
            store.close()
    return _finish(result, out, plots)


def run_scaling(
    settings: BenchSettings,
    sizes: Sequence[int],
    out: Optional[Path] = None,
    *,
    cache_root: Path,
    corpus_cache: Optional[Path] = None,
    progress: Progress = None,
    say: Say = _quiet,
    plots: bool = True,
) -> dict:
    """tau, speedup and drafting time of ``suffix-tree`` for growing corpora, interleaved.

    Each size k drafts from an in-memory tree over the first k train outputs; all sizes and
    ``vanilla`` run on each held-out prompt in turn, so the ratios share the same load.
    """
    settings = replace(settings, train=max(sizes), methods=("vanilla",))
    loaded = load_for(settings, cache_root=cache_root, corpus_cache=corpus_cache, progress=progress, say=say)
    sizes = sorted({min(k, len(loaded.corpus)) for k in sizes})
    trees = {}
    for k in sizes:
        index = build_index(loaded.corpus[:k])
        trees[f"suffix-tree@{k}"] = lambda index=index: index
    settings = replace(settings, methods=("vanilla", *trees))
    result = _header(settings, loaded)
    result["sizes"] = sizes
    say(f"scaling: corpus sizes {sizes}; {len(loaded.held_out)} held-out prompts")
    result.update(evaluate(loaded, settings, trees, progress=progress))
    result["scaling"] = [
        {
            "corpus": k,
            "tokens": sum(len(t) for t in loaded.corpus[:k]),
            **{f: result["methods"][f"suffix-tree@{k}"][f] for f in SCALING_FIELDS},
        }
        for k in sizes
    ]
    return _finish(result, out, plots)
