"""What every command shares: the console, options, and turning errors into one line."""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from pathlib import Path
from typing import Any, Iterator, Optional

import typer
from rich.console import Console


class _Console(Console):
    """A rich Console that leaves a closed pipe to ``reader_gone`` (rich's own handling
    points stdout at /dev/null and exits 1 from wherever it printed)."""

    def on_broken_pipe(self) -> None:
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")


console = _Console()
err_console = _Console(stderr=True)


def store_path(value: object) -> Optional[Path]:
    """--store's parser: a path, but not an empty one (``Path("")`` is the current directory)."""
    if value is None or isinstance(value, Path):
        return value
    if str(value).strip() == "":
        raise typer.BadParameter(
            "is empty: give a directory, or leave --store out for $SUFDEC_STORE or the default store"
        )
    return Path(str(value))


StoreOption = typer.Option(
    None,
    "--store",
    help="Store directory (new, empty, or a store). Default: $SUFDEC_STORE, else the user data dir (sufdec/store).",
    show_default=False,
    parser=store_path,
)
ModelOption = typer.Option(
    None,
    "--model",
    "-m",
    help="Model: a local Hugging Face folder, a .gguf file, or a hub id. Default: SmolLM2-135M-Instruct.",
    show_default=False,
)
TrustRemoteCodeOption = typer.Option(
    False,
    "--trust-remote-code",
    help="Run Python code that the model folder ships (an auto_map in its config). Off by default: such a "
    "folder is refused. Read that code first.",
)


def setting(cls: type, name: str, *flags: str, default: Any = ..., shown: str | None = None, prefix: str = "") -> Any:
    """The option for the settings field ``cls.name`` (a ``sufdec.knobs.knob``): its help,
    range and default come from the field, and a value out of range is one ``error:`` line
    naming the option, at parse time. ``default``: the option's own (None: the setting's
    default applies later, shown as ``shown``), else the field's; ``prefix``: what the help
    starts with (for example which --spec reads it)."""
    from sufdec import knobs

    field = knobs.field_of(cls, name)
    meta = field.metadata
    words = meta["help"]
    if meta.get("low") is not None or meta.get("high") is not None:
        words += ", " + knobs.span(meta.get("low"), meta.get("high"), meta.get("low_open", False))
    if shown is None:  # the option's own default where it has one, else the setting's
        shown = knobs.shown_value(default) if default not in (..., None) else knobs.shown_default(cls, name)
    words += f" (default {shown})."

    def check(value: Any) -> Any:
        why = knobs.problem(value, meta)
        if why is not None:
            raise fail(f"{flags[0]} {why}", 2)
        return value

    value = field.default if default is ... else default
    if prefix:
        words = words[0].lower() + words[1:]
    return typer.Option(value, *flags, help=prefix + words, show_default=False, callback=check)


def spec_help() -> str:
    """--spec's help: the drafter registry's kinds, each with what it does."""
    from sufdec.drafters.registry import help_text

    return help_text()


def fail(message: str, code: int = 1) -> "typer.Exit":
    """Print one clear error line and return the Exit to raise."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _known_errors() -> tuple[type[BaseException], ...]:
    """sufdec's typed errors, each meant to be shown as one line (engine ones once loaded)."""
    from sufdec.models import ModelFileError, ModelPullError
    from sufdec.tokenization import TokenizerLoadError

    known: list[type[BaseException]] = [ModelPullError, ModelFileError, TokenizerLoadError]
    with contextlib.suppress(ImportError):
        from sufdec.store import StoreError

        known.append(StoreError)
    if "sufdec.engine.loading" in sys.modules:  # never import torch just to name its errors
        from sufdec.engine.loading import ModelLoadError

        known.append(ModelLoadError)
    if "sufdec.session" in sys.modules:
        from sufdec.session import PromptTooLongError

        known.append(PromptTooLongError)
    if "sufdec.share" in sys.modules:
        from sufdec.share import ShareError

        known.append(ShareError)
    if "sufdec.eesd.exit_model" in sys.modules:
        from sufdec.eesd.exit_model import ExitLayerError

        known.append(ExitLayerError)
    return tuple(known)


def os_error_line(exc: OSError) -> str:
    """One line for an error of the operating system: what failed and on which file."""
    if exc.strerror is None:
        return str(exc)
    files = [
        os.fsencode(str(f)).decode("utf-8", "backslashreplace") for f in (exc.filename, exc.filename2) if f is not None
    ]
    return f"{exc.strerror}: {' -> '.join(files)}" if files else exc.strerror


@contextlib.contextmanager
def clean_errors() -> Iterator[None]:
    """Turn sufdec's typed errors, the operating system's (a file that cannot be read or
    written) and Ctrl-C into one line and a non-zero exit."""
    try:
        yield
    except (typer.Exit, BrokenPipeError):  # a closed pipe is reader_gone's, one level up
        raise
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted:[/] what was committed before Ctrl-C is kept.")
        raise typer.Exit(130)
    except Exception as exc:
        if isinstance(exc, _known_errors()):
            raise fail(str(exc)) from None
        if isinstance(exc, OSError):
            raise fail(os_error_line(exc)) from None
        raise


def _silence_stdout() -> None:
    """Point standard output at /dev/null, so that no later flush (at exit) fails again."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


@contextlib.contextmanager
def reader_gone() -> Iterator[None]:
    """`sufdec stats | head -1`, `sufdec generate ... | true`: when whoever reads standard
    output goes away, stop quietly and exit 0, as Unix filters do (no traceback, no message).
    What was committed stays (an `index` run's records, the outputs `generate` learned
    before it)."""
    try:
        yield
        sys.stdout.flush()  # inside the handler: the flush at interpreter exit must find nothing left
    except BrokenPipeError:
        _silence_stdout()
        raise typer.Exit(0) from None


def say(message: str) -> None:
    """Progress chatter goes to stderr so that --json output stays clean."""
    err_console.print(message, style="dim", highlight=False)


def resolve_store(store: Optional[Path]) -> Path:
    """--store, else $SUFDEC_STORE, else the user data dir (the environment is read here, once)."""
    from sufdec.store import resolve_store_path

    return resolve_store_path(store, os.environ)


def cache_root() -> Path:
    """sufdec's cache root: $SUFDEC_CACHE_DIR, else the user cache dir (read here, once)."""
    from sufdec.models import default_cache_root

    return default_cache_root(os.environ)


def convert_gguf(gguf: Path, out: Path) -> Path:
    from sufdec.models import check_gguf

    check_gguf(gguf)  # a damaged file is one line here, not a struct.error from deep inside the reader
    from sufdec.engine.loading import convert_gguf_to_safetensors  # torch only when a pull converts

    return convert_gguf_to_safetensors(gguf, out)


def default_model_dir() -> Path:
    """The default model's folder, pulled (and converted) on first use."""
    from sufdec.models import ensure_default_model

    return ensure_default_model(cache_root(), convert_gguf, say)


def load_text_tokenizer(model: Optional[str], trust_remote_code: bool = False):
    """The tokenizer of --tokenizer/--model (None: the default model's), without torch."""
    from sufdec.models import check_gguf_model
    from sufdec.tokenization import TokenizerLoadError, load_tokenizer

    where = model if model is not None else default_model_dir()
    check_gguf_model(where)
    try:
        return load_tokenizer(where, trust_remote_code=trust_remote_code)
    except TokenizerLoadError:
        raise
    except Exception as exc:  # tokenizers raises a bare Exception for a damaged tokenizer.json
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TokenizerLoadError(
            f"could not read the tokenizer of {os.fsencode(str(where)).decode('utf-8', 'backslashreplace')}: "
            f"{first} (a damaged or foreign tokenizer.json?)"
        ) from None


def open_store_for(
    store_dir: Optional[Path],
    model: Optional[str],
    tokenizer: Optional[str],
    *,
    config=None,
    trust_remote_code: bool = False,
):
    """Load the tokenizer named by --model/--tokenizer and open the store with it."""
    from sufdec.store import Store, TokenizerInfo

    tok = load_text_tokenizer(tokenizer or model, trust_remote_code)
    path = resolve_store(store_dir)
    store = Store.open(path, TokenizerInfo(tok.name, tok.fingerprint), config=config)
    return tok, store


def counting_progress() -> Any:
    """A transient progress bar on standard error (description, bar, done/total, time),
    shown only where standard error is a terminal."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("[bold]{task.description}[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=not err_console.is_terminal,
    )
