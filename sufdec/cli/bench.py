"""``sufdec bench``: generation speed end to end, the core, the store and drafting quality."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from sufdec.bench.settings import DEFAULT_METHODS, BenchSettings
from sufdec.cli import common
from sufdec.drafters.settings import DraftSettings
from sufdec.suffix.settings import preset_default

app = typer.Typer(
    help="Benchmarks: generation speed (bench --workload ...), corpus scaling (scaling), "
    "core and store speed (tree), model-free drafting quality (replay)."
)


def _tokenized_replies(limit_tokens: int, say=common.say) -> list[list[int]]:
    """ShareGPT replies tokenized with the default tokenizer, about ``limit_tokens`` in all."""
    from sufdec.bench import datasets

    tok = common.load_text_tokenizer(None)
    say("tokenizing ShareGPT replies with the default tokenizer ...")
    out, total = [], 0
    pairs = datasets.load_sharegpt_replies(datasets.fetch("sharegpt", common.cache_root()), limit=40000)
    for start in range(0, len(pairs), 1000):
        for ids in tok.encode_batch([r for _, r in pairs[start : start + 1000]]):
            if ids:
                out.append(ids)
                total += len(ids)
        if total >= limit_tokens:
            break
    return out


def _print_table(title: str, rows: dict) -> None:
    table = Table("metric", "value", title=title)
    for k, v in rows.items():
        table.add_row(k, f"{v:,.3f}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int) else str(v))
    common.console.print(table)


@app.command("tree")
def tree(
    corpus: str = typer.Option("both", "--corpus", help="synthetic, sharegpt or both."),
    tokens: int = typer.Option(1_000_000, "--tokens", help="Corpus size in tokens.", min=1000),
    max_depth: int = typer.Option(64, "--max-depth", min=1),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Speed and size of the suffix tree and the store on a synthetic and a real corpus.

    Reports update_us_per_token (tree), insert_us_per_token (tree + LMDB writes),
    speculate_us_per_call (incremental matcher, one token per step: mean, p99),
    scratch_us_per_call (the same contexts drafted from scratch, as without a matcher),
    speculate_us_per_token, memory_bytes_per_token (the tree's own count),
    rss_growth_bytes_per_token (what the inserts added to the process's RSS),
    disk_bytes_per_token and open_s. Wall times on a busy machine include time given to
    other processes: the *_cpu_* figures are this process's CPU time.
    """
    from sufdec.bench.store_bench import run_store_bench
    from sufdec.bench.tree import run_tree_bench, synthetic_corpus

    if corpus not in ("synthetic", "sharegpt", "both"):
        raise common.fail("--corpus must be synthetic, sharegpt or both", 2)
    results = {}
    with common.clean_errors():
        corpora = {}
        if corpus in ("synthetic", "both"):
            corpora["synthetic"] = synthetic_corpus(tokens)
        if corpus in ("sharegpt", "both"):
            corpora["sharegpt"] = _tokenized_replies(tokens)
        for name, seqs in corpora.items():
            common.say(f"{name}: {len(seqs):,} sequences, {sum(map(len, seqs)):,} tokens")
            res = run_tree_bench(seqs, max_depth=max_depth)
            res.update(run_store_bench(seqs, max_depth=max_depth))
            results[name] = res
    if as_json:
        print(json.dumps(results))
        return
    for name, res in results.items():
        _print_table(f"bench tree: {name}", res)


def _replay_configs(
    modes: str, budgets: str, trees: str, chain_too: bool, factor: Optional[float], min_token_prob: Optional[float]
) -> list:
    """Every combination of the replay options, each a ReplayConfig over a preset (exit 2 on bad values)."""
    from sufdec.bench.replay import TREES, ReplayConfig
    from sufdec.suffix import PRESETS

    mode_list = [m.strip() for m in modes.split(",") if m.strip()]
    tree_list = [t.strip() for t in trees.split(",") if t.strip()]
    if not mode_list or any(m not in PRESETS for m in mode_list):
        raise common.fail(f"--modes takes {', '.join(PRESETS)} or a comma list of them", 2)
    if not tree_list or any(t not in TREES for t in tree_list):
        raise common.fail(f"--trees takes {', '.join(TREES)} or a comma list of them", 2)
    try:
        budget_list = [int(b) for b in budgets.split(",") if b.strip()]
        return [
            ReplayConfig(
                DraftSettings.preset(
                    m, spec=spec, max_spec_tokens=b, max_spec_factor=factor, min_token_prob=min_token_prob
                ),
                trees=t,
                online=online,
            )
            for m in mode_list
            for b in budget_list
            for t in tree_list
            for spec in (("tree", "chain") if chain_too else ("tree",))
            for online in (False, True)
        ]
    except ValueError as exc:
        raise common.fail(f"bad replay options: {exc}", 2) from None


@app.command("replay")
def replay(
    corpus: str = typer.Option("spider", "--corpus", help="spider, humaneval or sharegpt (reference outputs)."),
    budgets: str = typer.Option("32,128", "--budgets", help="Comma-separated draft budgets (nodes)."),
    trees: str = typer.Option("both", "--trees", help="global, request, both, or a comma list."),
    chain_too: bool = typer.Option(
        False, "--chain/--no-chain", help="Also replay chain drafts (each draft's most probable path)."
    ),
    modes: str = typer.Option(
        "paper,merged",
        "--modes",
        help="Drafting presets: paper (published algorithm), merged (sufdec's default), or both as a comma list.",
    ),
    factor: Optional[float] = common.setting(
        DraftSettings, "max_spec_factor", "--spec-factor", default=None, shown=preset_default("max_spec_factor")
    ),
    min_token_prob: Optional[float] = common.setting(
        DraftSettings, "min_token_prob", "--min-token-prob", default=None, shown=preset_default("min_token_prob")
    ),
    limit: Optional[int] = typer.Option(None, "--limit", help="Use only the first N records."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Model-free drafting quality: tau (tokens per step) on held-out reference outputs.

    Split by record index 80/20; the global tree holds the train outputs; each held-out
    output is walked token by token, drafting at each position and advancing by the
    accepted tokens + 1. Both protocols: frozen (held-out outputs never added) and online
    (each added once walked).
    """
    from rich.progress import Progress

    from sufdec.bench import datasets
    from sufdec.bench.replay import replay as run_replay

    if corpus not in datasets.PACKAGES:
        raise common.fail(f"--corpus takes {', '.join(datasets.PACKAGES)}", 2)
    configs = _replay_configs(modes, budgets, trees, chain_too, factor, min_token_prob)
    with common.clean_errors():
        tok = common.load_text_tokenizer(None)
        pairs = datasets.replay_pairs(corpus, common.cache_root())[:limit]
        prompts = tok.encode_batch([p for p, _ in pairs])
        outputs = tok.encode_batch([o for _, o in pairs])
    n = int(len(pairs) * 0.8)
    train, held = outputs[:n], list(zip(prompts[n:], outputs[n:]))
    rows = []
    with Progress(console=common.err_console, transient=True, disable=not common.err_console.is_terminal) as progress:
        for cfg in configs:
            task = progress.add_task(cfg.label, total=len(held))
            res = run_replay(train, held, cfg, on_record=lambda k, task=task: progress.advance(task, k))
            rows.append({"label": cfg.label, **res.to_dict()})
    if as_json:
        print(json.dumps({"corpus": corpus, "train": len(train), "held_out": len(held), "results": rows}))
        return
    table = Table(
        "mode/trees/spec/budget/protocol",
        "tau",
        "acceptance",
        "µs/step",
        title=f"replay {corpus}: {len(train)} train, {len(held)} held out",
    )
    for r in rows:
        table.add_row(r["label"], f"{r['tau']:.3f}", f"{r['acceptance_rate']:.3f}", f"{r['speculate_us_per_step']:.1f}")
    common.console.print(table)


# ---------------------------------------------------------------- generation benchmark


def _methods(text: str) -> tuple[str, ...]:
    from sufdec.bench.settings import METHODS, is_method

    methods = tuple(m.strip() for m in text.split(",") if m.strip())
    bad = [m for m in methods if not is_method(m) or "@" in m]
    if bad or not methods:
        raise common.fail(f"unknown method(s) {', '.join(bad) or '(none)'}; choose from {', '.join(METHODS)}", 2)
    return methods


def _progress():
    """A rich progress display on stderr, and the ``progress(label, total) -> advance`` hook."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=common.err_console,
        transient=True,
        disable=not common.err_console.is_terminal,
    )

    def hook(label: str, total: int):
        task = bar.add_task(label, total=total)
        return lambda k=1: bar.advance(task, k)

    return bar, hook


def _f(v, nd: int = 2) -> str:
    return "-" if v is None else f"{v:,.{nd}f}" if isinstance(v, float) else str(v)


def render_results(result: dict) -> None:
    """The per-method table of one run."""
    title = (
        f"{result['workload']}: {result['model']} {result['dtype']}, {result['protocol']}, "
        f"corpus {result['corpus']['source']} ({result['train']} outputs), {result['eval']} held-out prompts"
    )
    table = Table(
        "method",
        "tok/s",
        "ms/tok",
        "tau",
        "accept",
        "draft ms",
        "bookkeep ms",
        "speedup (med)",
        "speedup (total)",
        "speedup (decode)",
        "mismatches",
        title=title,
    )
    for name, s in result["methods"].items():
        mm = s["mismatches"]
        mm_text = (
            "0"
            if not mm
            else f"[red]{mm}[/] (first: prompt {s['first_mismatch']['prompt']}, pos {s['first_mismatch']['position']})"
        )
        table.add_row(
            name,
            _f(s["tokens_per_s"], 1),
            _f(s["ms_per_token"]),
            _f(s["tau"]),
            _f(s["acceptance_rate"]),
            _f(s["draft_ms_per_step"], 3),
            _f(s["bookkeeping_ms_per_step"], 3),
            _f(s["speedup_median"]),
            _f(s["speedup_total"]),
            _f(s.get("speedup_decode")),
            mm_text,
        )
    common.console.print(table)
    if result.get("cost_model"):
        cm = result["cost_model"]
        common.say(
            "forward cost by tokens verified: " + ", ".join(f"k={k}: {c:.2f}" for k, c in zip(cm["ks"], cm["costs"]))
        )
    load = result.get("load_avg_1m", {})
    common.say(f"load average (1 min) during the run: {load.get('min')} - {load.get('max')}; commit {result['commit']}")


def _settings(
    workload,
    model,
    train,
    eval_n,
    methods,
    max_new_tokens,
    corpus,
    dtype,
    online,
    max_spec_tokens,
    sizing,
    max_prompt_tokens,
    device,
    exit_layer=None,
    exit_branch=0.0,
    trust_remote_code=False,
):
    """The run's BenchSettings from the options (exit 2 on a bad value); the default model is
    pulled here when --model is not given, so call it inside ``common.clean_errors()``."""
    method_names = _methods(methods)
    draft = DraftSettings.preset("merged", max_spec_tokens=max_spec_tokens, sizing=sizing, exit_branch=exit_branch)
    model = model if model is not None else str(common.default_model_dir())
    return BenchSettings(
        workload=workload,
        model=model,
        train=train,
        eval=eval_n,
        methods=method_names,
        max_new_tokens=max_new_tokens,
        corpus=corpus,
        dtype=dtype,
        device=device,
        online=online,
        draft=draft,
        max_prompt_tokens=max_prompt_tokens,
        exit_layer=str(exit_layer) if exit_layer is not None else None,
        trust_remote_code=trust_remote_code,
    )


def _corpus_cache(corpus_cache: Optional[Path]) -> Path:
    from sufdec.bench.corpus import default_corpus_cache

    return corpus_cache if corpus_cache is not None else default_corpus_cache(common.cache_root())


WorkloadOption = typer.Option(
    None,
    "--workload",
    "-w",
    show_default=False,
    help='spider, humaneval, sharegpt, or FILE.jsonl with one {"prompt", "reference"} a line.',
)
TrainOption = common.setting(BenchSettings, "train", "--train")
EvalOption = common.setting(BenchSettings, "eval", "--eval")
MaxNewOption = common.setting(BenchSettings, "max_new_tokens", "--max-new-tokens", "-n")
CorpusOption = common.setting(BenchSettings, "corpus", "--corpus")
DtypeOption = common.setting(BenchSettings, "dtype", "--dtype")
DeviceOption = common.setting(BenchSettings, "device", "--device")
OutOption = typer.Option(None, "--out", help="Write results.json, PNG plots and the store here.", show_default=False)
CacheOption = typer.Option(
    None,
    "--corpus-cache",
    show_default=False,
    help="Where generated corpora are cached. Default: the sufdec cache dir (bench/corpora).",
)
SpecTokensOption = common.setting(DraftSettings, "max_spec_tokens", "--max-spec-tokens")
SizingOption = common.setting(
    DraftSettings,
    "sizing",
    "--sizing",
    prefix="Draft control of sufdec's methods (a method written METHOD:SIZING, e.g. eesd:beta-ts, overrides it). ",
)
MaxPromptOption = common.setting(BenchSettings, "max_prompt_tokens", "--max-prompt-tokens")


@app.callback(invoke_without_command=True)
def bench(
    ctx: typer.Context,
    workload: Optional[str] = WorkloadOption,
    model: Optional[str] = common.ModelOption,
    trust_remote_code: bool = common.TrustRemoteCodeOption,
    train: int = TrainOption,
    eval_n: int = EvalOption,
    methods: str = typer.Option(
        ",".join(DEFAULT_METHODS),
        "--methods",
        help="Comma list of vanilla, pld, suffix-chain, suffix-tree, suffix-paper, "
        "eesd (needs `sufdec train-exit`), hybrid, sufdec-off; METHOD:SIZING runs a method with another "
        "--sizing (e.g. eesd:beta-ts).",
    ),
    max_new_tokens: int = MaxNewOption,
    corpus: str = CorpusOption,
    dtype: str = DtypeOption,
    device: str = DeviceOption,
    online: bool = typer.Option(
        False,
        "--online/--frozen",
        help="Add each finished held-out output to the store "
        "(after every method has run on it), or keep the store at the train split.",
    ),
    max_spec_tokens: int = SpecTokensOption,
    sizing: str = SizingOption,
    max_prompt_tokens: int = MaxPromptOption,
    out: Optional[Path] = OutOption,
    corpus_cache: Optional[Path] = CacheOption,
    exit_layer: Optional[Path] = typer.Option(
        None,
        "--exit-layer",
        exists=True,
        dir_okay=False,
        show_default=False,
        help="eesd: the exit layer's .safetensors (default: the newest trained).",
    ),
    exit_branch: float = common.setting(DraftSettings, "exit_branch", "--exit-branch", prefix="eesd, hybrid: "),
    as_json: bool = typer.Option(False, "--json", help="Print results.json's object instead of the table."),
) -> None:
    """Generation speed end to end: plain generate(), prompt lookup and suffix drafting, interleaved.

    Builds a fresh store from the workload's train split, then decodes each held-out prompt
    with every method in turn (greedy, one process, the order rotating per prompt) and
    reports tokens/s, tau, acceptance, drafting and bookkeeping time per step, speedup over
    plain generate() (median of per-prompt ratios and total-time ratio), and any output
    that differs from plain generate()'s.
    """
    if ctx.invoked_subcommand is not None:
        return
    if workload is None:
        common.console.print(ctx.get_help())
        raise typer.Exit(0)
    from sufdec.bench.generation import run_bench
    from sufdec.bench.report import plots_available

    if out is not None and not plots_available():  # say it before the long work, not after
        common.say(
            "matplotlib is not installed: results.json will be written without plots "
            '(pip install "sufdec[bench]", then `sufdec bench plot`)'
        )
    bar, hook = _progress()
    with common.clean_errors():
        try:
            settings = _settings(
                workload,
                model,
                train,
                eval_n,
                methods,
                max_new_tokens,
                corpus,
                dtype,
                online,
                max_spec_tokens,
                sizing,
                max_prompt_tokens,
                device,
                exit_layer,
                exit_branch,
                trust_remote_code,
            )
            with bar:
                result = run_bench(
                    settings,
                    out,
                    cache_root=common.cache_root(),
                    corpus_cache=_corpus_cache(corpus_cache),
                    progress=hook,
                    say=common.say,
                )
        except ValueError as exc:
            raise common.fail(str(exc)) from None
    if as_json:
        print(json.dumps(result))
        return
    render_results(result)
    if out is not None:
        common.say(f"wrote {out / 'results.json'}" + "".join(f", {p}" for p in result.get("plots", [])))
        if result.get("plot_error"):
            common.say(f"no plots: {result['plot_error']}")


@app.command("scaling")
def scaling(
    workload: str = typer.Option("spider", "--workload", "-w", help="spider, humaneval, sharegpt or FILE.jsonl."),
    sizes: str = typer.Option("0,64,256,1024", "--sizes", help="Corpus sizes (train outputs), capped by the workload."),
    model: Optional[str] = common.ModelOption,
    trust_remote_code: bool = common.TrustRemoteCodeOption,
    eval_n: int = common.setting(BenchSettings, "eval", "--eval", default=16),
    max_new_tokens: int = MaxNewOption,
    corpus: str = CorpusOption,
    dtype: str = DtypeOption,
    device: str = DeviceOption,
    max_spec_tokens: int = SpecTokensOption,
    sizing: str = SizingOption,
    max_prompt_tokens: int = MaxPromptOption,
    out: Optional[Path] = OutOption,
    corpus_cache: Optional[Path] = CacheOption,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """tau, speedup and drafting time per step as the corpus grows (frozen protocol).

    Each size drafts from a tree over the first K train outputs; plain generate() and every
    size run on each held-out prompt in turn.
    """
    try:
        ks = sorted({int(k) for k in sizes.split(",") if k.strip()})
    except ValueError:
        raise common.fail("--sizes takes comma-separated integers", 2) from None
    if not ks or ks[0] < 0:
        raise common.fail("--sizes takes non-negative integers", 2)
    from sufdec.bench.generation import run_scaling

    bar, hook = _progress()
    with common.clean_errors():
        try:
            settings = _settings(
                workload,
                model,
                max(ks),
                eval_n,
                "vanilla",
                max_new_tokens,
                corpus,
                dtype,
                False,
                max_spec_tokens,
                sizing,
                max_prompt_tokens,
                device,
                None,
                0.0,
                trust_remote_code,
            )
            with bar:
                result = run_scaling(
                    settings,
                    ks,
                    out,
                    cache_root=common.cache_root(),
                    corpus_cache=_corpus_cache(corpus_cache),
                    progress=hook,
                    say=common.say,
                )
        except ValueError as exc:
            raise common.fail(str(exc)) from None
    if as_json:
        print(json.dumps(result))
        return
    table = Table(
        "train outputs",
        "tokens",
        "tau",
        "accept",
        "draft ms/step",
        "speedup (med)",
        "speedup (total)",
        "mismatches",
        title=f"scaling {result['workload']}: {result['model']} {result['dtype']}, {result['eval']} held-out prompts",
    )
    for r in result["scaling"]:
        table.add_row(
            str(r["corpus"]),
            f"{r['tokens']:,}",
            _f(r["tau"]),
            _f(r["acceptance_rate"]),
            _f(r["draft_ms_per_step"], 3),
            _f(r["speedup_median"]),
            _f(r["speedup_total"]),
            str(r["mismatches"]),
        )
    common.console.print(table)


@app.command("plot")
def plot(
    results: list[Path] = typer.Argument(..., exists=True, dir_okay=False, help="results.json files of bench runs."),
    out: Path = typer.Option(Path("."), "--out", help="Folder for speedup.png."),
) -> None:
    """Speedup by method and workload over several bench runs, as one PNG."""
    from sufdec.bench.report import plots_available

    if not plots_available():
        raise common.fail('plots need matplotlib: pip install "sufdec[bench]"', 2)
    from sufdec.bench.plots import speedup_by_method

    loaded = [json.loads(Path(p).read_text(encoding="utf-8")) for p in results]
    out.mkdir(parents=True, exist_ok=True)
    path = speedup_by_method([r for r in loaded if "scaling" not in r], out / "speedup.png")
    common.say(f"wrote {path}")
