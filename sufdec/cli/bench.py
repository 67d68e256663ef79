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

app = typer.Typer(
    help="Benchmarks: generation speed (bench --workload ...), corpus scaling (scaling), "
    "core and store speed (tree), model-free drafting quality (replay), many hosts sharing one corpus (hosts)."
)


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
