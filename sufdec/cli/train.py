"""``sufdec train-exit``: train the early-exit layer that ``sufdec generate --spec eesd`` drafts with."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from sufdec.cli import common
from sufdec.cli import share as share_cli
from sufdec.eesd.settings import TrainSettings


def _share(x: Optional[float]) -> str:
    """A held-out figure, or "not measured" (a run stopped by Ctrl-C measures none)."""
    return f"{x:.1%}" if x is not None else "not measured"


def train_exit(
    model: Optional[str] = common.ModelOption,
    trust_remote_code: bool = common.TrustRemoteCodeOption,
    layer: Optional[int] = typer.Option(
        None,
        "--layer",
        "-l",
        min=1,
        show_default=False,
        help=(
            "N: the exit layer reads the output of the first N layers (default: an eighth of them, 4 of 30 "
            "for the default model)."
        ),
    ),
    data: Optional[Path] = typer.Option(
        None,
        "--data",
        exists=True,
        dir_okay=False,
        show_default=False,
        help='JSONL of past outputs: {"prompt","completion"}, {"messages"}, {"text"} or {"token_ids"}.',
    ),
    store: Optional[Path] = typer.Option(
        None,
        "--store",
        show_default=False,
        parser=common.store_path,
        help=(
            "Train on the outputs a store holds (default when --data is not given: $SUFDEC_STORE, else the user store)."
        ),
    ),
    steps: int = common.setting(TrainSettings, "steps", "--steps"),
    lr: float = common.setting(TrainSettings, "lr", "--lr"),
    max_tokens: int = typer.Option(60000, "--max-tokens", min=256, help="Most training tokens read."),
    draft_vocab: int = common.setting(TrainSettings, "draft_vocab", "--draft-vocab"),
    init_from: Optional[int] = common.setting(TrainSettings, "init_from", "--init-from"),
    out: Optional[Path] = typer.Option(
        None,
        "--out",
        file_okay=False,
        show_default=False,
        help="Folder for the exit layer (default: the model cache, where generate --spec eesd finds it; that "
        "cache is the user's, shared by every clone and checkout: --out or $SUFDEC_CACHE_DIR keeps a run apart).",
    ),
    fresh: bool = typer.Option(False, "--fresh", help="Start over instead of resuming a saved exit layer."),
    as_json: bool = typer.Option(False, "--json", help="Print the saved metadata as JSON."),
    share: Optional[str] = share_cli.ShareOption,
) -> None:
    """Train an early-exit draft layer by self-distillation from the model itself (EESD).

    The model is frozen; one new layer, placed after the first N, learns to predict the
    model's next-token distribution from their output. Runs in minutes on a CPU for the
    default model. Ctrl-C keeps what was trained (a re-run resumes it); the held-out
    acceptance (how often the draft's top token is the model's) is measured at the end.
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with common.clean_errors():
        from sufdec.eesd import exit_model
        from sufdec.eesd.train import train_exit_layer
        from sufdec.engine.loading import load_model
        from sufdec.engine.stopping import eos_ids_of

        spec = model if model is not None else str(common.default_model_dir())
        _check_layers(spec, layer, init_from)  # before minutes of loading and reading data
        common.say(f"loading {Path(spec).name} ...")
        hf_model, tok = load_model(spec, device="auto", dtype="float32", trust_remote_code=trust_remote_code)
        exit_model.check_supported(hf_model)
        n = layer if layer is not None else exit_model.default_layer(hf_model)
        share_url = share_cli.resolve(share) if data is None else None
        if share_url is not None:  # train on what every host learned
            share_cli.catch_up(store, share_url, spec, None, trust_remote_code)
        seqs, source = _training_data(data, store, tok, spec, max_tokens)
        total = sum(len(ids) for ids, _ in seqs)
        if total < 256:
            raise common.fail(
                f"{source} holds {total} tokens: train-exit needs at least 256 "
                "(index past outputs first, or pass --data)",
                2,
            )
        folder = (
            out
            if out is not None
            else exit_model.default_folder(common.cache_root(), exit_model.model_fingerprint(hf_model))
        )
        if out is None:
            common.say(
                f"the exit layer goes to {folder}: the user's model cache, shared by every clone and "
                "checkout (--out or $SUFDEC_CACHE_DIR keeps a run apart)"
            )
        common.say(f"training the exit layer after layer {n} on {len(seqs)} sequences, {total} tokens")
        settings = TrainSettings(layer=n, steps=steps, lr=lr, draft_vocab=draft_vocab, init_from=init_from)
        eos = next(iter(eos_ids_of(hf_model, tok)), None)  # the separator between packed records
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            console=common.err_console,
            transient=True,
        ) as bar:
            progress = _progress_to(bar)
            info = train_exit_layer(
                hf_model,
                seqs,
                settings,
                folder,
                eos=eos,
                model_name=Path(spec).name,
                progress=progress,
                resume=not fresh,
            )
    _print_result(info, exit_model.exit_paths(folder, n)[0], as_json)


def _training_data(data: Optional[Path], store: Optional[Path], tok, spec: str, max_tokens: int) -> tuple[list, str]:
    """The training sequences from --data (bad lines reported, up to 10) or from a store,
    with the source's name."""
    from sufdec.eesd.data import sequences_from_jsonl, sequences_from_store

    if data is not None:
        bad: list[tuple[int, str]] = []
        seqs = sequences_from_jsonl(data, tok, max_tokens, skipped=lambda n, why, _long: bad.append((n, why)))
        for n, why in bad[:10]:
            common.say(f"{data}:{n}: skipped: {why}")
        if len(bad) > 10:
            common.say(f"... and {len(bad) - 10} more lines skipped")
        return seqs, str(data)
    from sufdec.store import Store
    from sufdec.tokenization import tokenizer_info

    path = common.resolve_store(store)
    with Store.open(path, tokenizer_info(tok, Path(spec).stem), readonly=True, create=False) as st:
        return sequences_from_store(st, max_tokens), str(path)


def _progress_to(bar):
    """train_exit_layer's progress callback: rich bars on a terminal, plain lines otherwise."""
    tasks: dict[str, int] = {}
    plain = _PlainProgress() if not common.err_console.is_terminal else None

    def progress(phase: str, f: dict) -> None:
        if plain is not None:  # a log file or a pipe: rich draws nothing there
            plain.report(phase, f)
        if phase == "teacher":
            if phase not in tasks:
                tasks[phase] = bar.add_task("teacher pass", total=f["total"], info="")
            bar.update(tasks[phase], completed=f["done"])
        else:
            if phase not in tasks:
                tasks[phase] = bar.add_task("training", total=f["steps"], info="")
            bar.update(
                tasks[phase],
                completed=f["step"],
                info=f"loss {f['loss']:.3f}, {f['tokens_per_s']:.0f} tokens/s",
            )

    return progress


def _print_result(info, path: Path, as_json: bool) -> None:
    """The saved layer's figures, as JSON or as lines."""
    if as_json:
        meta = json.loads(info.to_json())
        meta["extra"].pop("draft_vocab", None)
        print(json.dumps({"path": str(path), **meta}))
        return
    common.console.print(
        f"[green]saved[/] {path}: layer {info.layer} of {info.num_layers}, "
        f"{info.steps} steps, loss {info.final_loss:.3f}, held-out acceptance {_share(info.held_out_acceptance)}, "
        f"{info.train_seconds:.0f} s",
        highlight=False,
    )
    held = info.extra.get("held_out") or {}
    if held.get("chain"):
        chains = " / ".join(f"{x:.0%}" if x is not None else "-" for x in held["chain"])
        common.console.print(
            f"  held out, {held['positions']} output positions: top-2 {held['top2']:.1%}; a greedy chain of "
            f"1..{len(held['chain'])} tokens accepted whole {chains}",
            highlight=False,
        )


class _PlainProgress:
    """train-exit's progress as lines, for a standard error that is not a terminal (a log
    file, a pipe, CI): one line per tenth of a phase, at most one every 10 seconds besides."""

    def __init__(self) -> None:
        self.last: dict[str, tuple[float, int]] = {}

    def report(self, phase: str, f: dict) -> None:
        import time

        done, total = (f["done"], f["total"]) if phase == "teacher" else (f["step"], f["steps"])
        now = time.monotonic()
        seen_at, tenth = self.last.get(phase, (-1e9, -1))
        now_tenth = 10 * done // max(total, 1)
        if now_tenth == tenth and now - seen_at < 10.0 and done < total:
            return
        self.last[phase] = (now, now_tenth)
        what = "teacher pass" if phase == "teacher" else "training"
        extra = "" if phase == "teacher" else f", loss {f['loss']:.3f}, {f['tokens_per_s']:.0f} tokens/s"
        common.say(f"{what}: {done}/{total}{extra}")


def _layer_count(spec: str) -> Optional[int]:
    """The model's decoder layers, read from its folder's config.json (None: not a folder
    with one; the check then happens once the model is loaded)."""
    try:
        raw = json.loads((Path(spec).expanduser() / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    text = raw.get("text_config") if isinstance(raw, dict) and isinstance(raw.get("text_config"), dict) else raw
    n = text.get("num_hidden_layers") if isinstance(text, dict) else None
    return n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else None


def _check_layers(spec: str, layer: Optional[int], init_from: Optional[int]) -> None:
    """--layer and --init-from against the model's layer count, before it loads."""
    n = _layer_count(spec)
    if n is None:
        return
    if layer is not None and not 1 <= layer < n:
        raise common.fail(f"--layer must be between 1 and {n - 1} for this {n}-layer model, not {layer}", 2)
    if init_from is not None and not 0 <= init_from < n:
        raise common.fail(
            f"--init-from must be a layer index between 0 and {n - 1} for this {n}-layer model, not {init_from}", 2
        )
