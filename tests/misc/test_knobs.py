"""Settings fields carry their help, range and default once (``sufdec.knobs``): the settings
refuse a value out of range by the field's name, and the CLI's options built from them
show the same default and refuse the same values by the option's name."""

from __future__ import annotations

import dataclasses

import pytest
import typer
from typer.testing import CliRunner

from sufdec import knobs
from sufdec.bench.settings import BenchSettings
from sufdec.cli.app import app
from sufdec.drafters.settings import DraftSettings
from sufdec.eesd.settings import TrainSettings
from sufdec.suffix.settings import preset_default


def test_ranges_and_choices() -> None:
    meta = {"low": 0.0, "high": 1.0}
    assert knobs.problem(0.5, meta) is None and knobs.problem(None, meta) is None
    assert knobs.problem(1.5, meta) == "must be in [0, 1], not 1.5"
    assert knobs.problem(float("nan"), meta) is not None  # nan passes every comparison
    assert knobs.problem(0, {"low": 0, "low_open": True}) == "must be > 0, not 0"
    assert knobs.problem("x", {"choices": ("a", "b")}) == "must be one of a, b, not 'x'"


@pytest.mark.parametrize(
    "cls, field, value",
    [
        (DraftSettings, "exit_min_prob", 1.5),
        (DraftSettings, "sizing", "sometimes"),
        (DraftSettings, "max_spec_tokens", -1),
        (DraftSettings, "hybrid_explore", 0),
        (BenchSettings, "eval", 0),
    ],
)
def test_settings_refuse_by_field_name(cls, field, value) -> None:
    base = {"workload": "spider", "model": "m"} if cls is BenchSettings else {}
    with pytest.raises(ValueError, match=f"^{field} must be"):
        cls(**base, **{field: value})


def _commands():
    group = typer.main.get_command(app)
    for name, command in group.commands.items():
        yield name, command
        for sub, subcommand in getattr(command, "commands", {}).items():
            yield f"{name} {sub}", subcommand


def _options_from_knobs() -> list[tuple[str, object, type, str]]:
    """(command, option, settings class, field) of every option built from a knob (its
    help holds the field's help text)."""
    found = []
    for name, command in _commands():
        for param in command.params:
            for cls in (DraftSettings, BenchSettings, TrainSettings):
                for f in dataclasses.fields(cls):
                    text = f.metadata.get("help") if f.metadata else None
                    if text and param.help and text[1:] in param.help:
                        found.append((name, param, cls, f.name))
    return found


def test_every_such_option_says_the_default_it_takes() -> None:
    found = _options_from_knobs()
    flags = {(c, p.opts[0]) for c, p, *_ in found}
    for expected in [
        ("generate", "--max-spec-tokens"),
        ("generate", "--sizing"),
        ("generate", "--exit-branch"),
        ("bench", "--train"),
        ("train-exit", "--steps"),
        ("train-exit", "--lr"),
    ]:
        assert expected in flags, sorted(flags)
    for command, param, cls, name in found:
        shown = (
            preset_default(name) if name in ("max_spec_factor", "min_token_prob") else knobs.shown_default(cls, name)
        )
        if param.default is not None and param.default != knobs.field_of(cls, name).default:
            shown = knobs.shown_value(param.default)  # a command's own default (bench scaling's --eval)
        assert f"(default {shown})." in param.help, (command, param.opts, param.help)


def test_an_option_refuses_what_its_field_refuses() -> None:
    res = CliRunner().invoke(app, ["generate", "--prompt", "x", "--exit-min-prob", "2"])
    assert res.exit_code == 2 and "--exit-min-prob must be in [0, 1], not 2.0" in res.output
    res = CliRunner().invoke(app, ["bench", "--workload", "spider", "--eval", "0"])
    assert res.exit_code == 2 and "--eval must be >= 1, not 0" in res.output
