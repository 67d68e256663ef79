"""What every command shares: the console, options, and turning errors into one line."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Iterator, Optional

import typer
from rich.console import Console

console = Console()
err_console = Console(stderr=True)

StoreOption = typer.Option(
    None,
    "--store",
    help="Store directory. Default: $SUFDEC_STORE, else the user data dir (sufdec/store).",
    show_default=False,
)
ModelOption = typer.Option(
    None,
    "--model",
    "-m",
    help="Model: a local Hugging Face folder, a .gguf file, or a hub id. Default: SmolLM2-135M-Instruct.",
    show_default=False,
)


def fail(message: str, code: int = 1) -> "typer.Exit":
    """Print one clear error line and return the Exit to raise."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _known_errors() -> tuple[type[BaseException], ...]:
    """sufdec's typed errors, each meant to be shown as one line (engine ones once loaded)."""
    from sufdec.models import ModelPullError
    from sufdec.tokenization import TokenizerLoadError

    known: list[type[BaseException]] = [ModelPullError, TokenizerLoadError, FileNotFoundError]
    with contextlib.suppress(ImportError):
        from sufdec.store import StoreError

        known.append(StoreError)
    if "sufdec.session" in sys.modules:  # never import torch just to name its errors
        from sufdec.engine.loading import ModelLoadError
        from sufdec.session import PromptTooLongError

        known += [ModelLoadError, PromptTooLongError]
    if "sufdec.eesd.exit_model" in sys.modules:
        from sufdec.eesd.exit_model import ExitLayerError

        known.append(ExitLayerError)
    return tuple(known)


@contextlib.contextmanager
def clean_errors() -> Iterator[None]:
    """Turn sufdec's typed errors (and Ctrl-C) into one line and a non-zero exit."""
    try:
        yield
    except typer.Exit:
        raise
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted:[/] what was committed before Ctrl-C is kept.")
        raise typer.Exit(130)
    except Exception as exc:
        if isinstance(exc, _known_errors()):
            raise fail(str(exc)) from None
        raise


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
    from sufdec.engine.loading import convert_gguf_to_safetensors  # torch only when a pull converts

    return convert_gguf_to_safetensors(gguf, out)


def default_model_dir() -> Path:
    """The default model's folder, pulled (and converted) on first use."""
    from sufdec.models import ensure_default_model

    return ensure_default_model(cache_root(), convert_gguf, say)


def load_text_tokenizer(spec: Optional[str]):
    """The tokenizer of --tokenizer/--model (None: the default model's), without torch."""
    from sufdec.tokenization import load_tokenizer

    return load_tokenizer(spec if spec is not None else default_model_dir())
