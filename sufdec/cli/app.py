"""The ``sufdec`` command: one Typer app, one module per command group."""

from __future__ import annotations

import inspect
import re
import sys

import typer
from typer.core import TyperGroup

from sufdec.cli import (
    bench,
    bench_hosts,
    bench_replay,
    common,
    data,
    generate,
    index,
    maintenance,
    model,
    share,
    stats,
    train,
)


class _Sufdec(TyperGroup):
    """Around every command: a closed standard output (`sufdec stats | head -1`) ends it
    quietly, and names whose bytes are not UTF-8 print as those bytes (as `ls` prints them)
    instead of failing to encode."""

    def invoke(self, ctx):  # type: ignore[no-untyped-def]
        reconfigure = getattr(sys.stdout, "reconfigure", None)
        if reconfigure is not None and getattr(sys.stdout, "errors", None) == "strict":
            reconfigure(errors="surrogateescape")
        with common.reader_gone():
            return super().invoke(ctx)


app = typer.Typer(
    name="sufdec",
    cls=_Sufdec,
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
bench.app.command("tree")(bench_replay.tree)
bench.app.command("replay")(bench_replay.replay)
bench.app.command("hosts")(bench_hosts.hosts)
app.add_typer(bench.app, name="bench")
app.add_typer(share.app, name="share")


_KEEP = re.compile(r"\s|[-*] |\d+\. ")  # a paragraph with such a line is a list or code: kept as written


def reflow(doc: str) -> str:
    """A docstring as help: each paragraph's lines joined into one, for the terminal to wrap
    (Typer keeps single line breaks: a line of the source broke mid-sentence at 80 columns);
    a paragraph holding a list or indented lines is kept as written."""
    paragraphs = inspect.cleandoc(doc).split("\n\n")
    out = []
    for para in paragraphs:
        lines = para.splitlines()
        out.append(para if any(_KEEP.match(line) for line in lines[1:]) else " ".join(x.strip() for x in lines))
    return "\n\n".join(out)


def _reflow_all(group: typer.Typer) -> None:
    for cmd in group.registered_commands:
        doc = cmd.help if cmd.help is not None else inspect.getdoc(cmd.callback)
        if doc:
            cmd.help = reflow(doc)
    if group.registered_callback is not None:
        info = group.registered_callback
        doc = info.help if info.help is not None else inspect.getdoc(info.callback)
        if doc:
            info.help = reflow(doc)
    for sub in group.registered_groups:
        if sub.typer_instance is not None:
            _reflow_all(sub.typer_instance)


_reflow_all(app)


def main() -> None:
    app()
