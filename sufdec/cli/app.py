"""The ``sufdec`` command: one Typer app, one module per command group."""

from __future__ import annotations

import typer

from sufdec.cli import bench, data, generate, index, maintenance, model, stats, train

app = typer.Typer(
    name="sufdec",
    help=(
        "Faster LLM generation from a suffix tree over past outputs (SuffixDecoding).\n\n"
        "Typical use: [bold]sufdec index outputs.jsonl[/] to learn from past outputs, "
        "[bold]sufdec generate --prompt ...[/] to generate with speculation (it keeps learning), "
        "[bold]sufdec stats[/] to inspect the tree."
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("index")(index.index)
app.command("stats")(stats.stats)
app.command("generate")(generate.generate)
app.command("verify")(maintenance.verify)
app.command("evict")(maintenance.evict)
app.command("compact")(maintenance.compact)
app.command("train-exit")(train.train_exit)
app.add_typer(model.app, name="model")
app.add_typer(data.app, name="data")
app.add_typer(bench.app, name="bench")


def main() -> None:
    app()
