"""The drafter registry: a kind added with one file and one entry runs through the decode
loop and the session unchanged (greedy output identical to plain decoding), and nothing
outside the registry decides what a spec means."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from sufdec.drafters import registry
from sufdec.drafters.service import DraftService
from sufdec.drafters.settings import DraftSettings


@pytest.fixture
def repeat_kind():
    from tests.drafters import toy_drafter

    registry.register(toy_drafter.KIND)
    yield toy_drafter
    registry.unregister("repeat")


def test_a_registered_kind_runs_through_the_decode_loop(repeat_kind) -> None:
    from sufdec.drafters.control import ControlState
    from sufdec.engine import GenerationConfig, SpeculativeGenerator
    from tests.engine.helpers import char_tokenizer, plain_greedy, random_prompts, tiny_model

    model = tiny_model("llama", seed=2)
    made = []
    service = DraftService(DraftSettings(spec="repeat", sizing="fixed"), controls=ControlState.flat())
    build = registry.kind_of("repeat").build
    registry.register(
        registry.DrafterKind("repeat", lambda s, d: made.append(build(s, d)) or made[-1], "the toy", chain=True)
    )
    gen = SpeculativeGenerator(model, char_tokenizer(), drafting=service)
    accepted = 0
    for prompt in random_prompts(4, seed=9, lo=8, hi=30):
        prompt = prompt + prompt[:6]  # something to repeat
        res = gen.generate(prompt, GenerationConfig(max_new_tokens=24, eos_token_ids=()))
        assert res.token_ids == plain_greedy(model, prompt, 24)
        accepted += sum(s.accepted_nodes for s in res.step_results)
        assert res.drafting["spec"] == "repeat"
    assert len(made) == 4 and sum(d.drafts for d in made) > 0  # a fresh drafter per request, drafting
    assert sum(s.verified for s in res.step_results) > 0


def test_unknown_and_listed_kinds(repeat_kind) -> None:
    assert "repeat" in registry.names() and "repeat:" in registry.help_text()
    with pytest.raises(ValueError, match="spec must be one of"):
        registry.kind_of("nonesuch")


def test_the_cli_offers_every_registered_kind(repeat_kind) -> None:
    from typer.testing import CliRunner

    from sufdec.cli.app import app

    res = CliRunner().invoke(app, ["generate", "--spec", "nonesuch", "-p", "x"])
    assert res.exit_code == 2 and "repeat" in res.output  # the refusal lists the registry's kinds


SPEC_NAMES = {"tree", "chain", "eesd", "hybrid", "off"}
ALLOWED = {
    "sufdec/drafters/registry.py",  # the entries themselves
    "sufdec/bench/settings.py",
    "sufdec/bench/generation.py",
    "sufdec/cli/bench.py",
}  # bench method names


def test_no_spec_string_is_compared_outside_the_registry() -> None:
    """``x.spec == "eesd"``, ``spec in ("tree", "chain")``: only the registry decides."""
    root = Path(__file__).resolve().parents[2]
    bad = []
    for path in sorted((root / "sufdec").rglob("*.py")):
        rel = str(path.relative_to(root))
        if rel in ALLOWED:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Compare):
                continue
            sides = [node.left, *node.comparators]
            names = {n.attr if isinstance(n, ast.Attribute) else getattr(n, "id", None) for n in sides}
            consts = {
                c.value
                for side in sides
                for c in ast.walk(side)
                if isinstance(c, ast.Constant) and isinstance(c.value, str)
            }
            if "spec" in names and consts & SPEC_NAMES:
                bad.append(f"{rel}:{node.lineno}")
    assert not bad, f"spec strings compared outside the registry: {bad}"
