"""Drafters declare what they can do beyond the four calls; the drafting service reads the
declaration, never the drafter's type or the methods it happens to have."""

from __future__ import annotations

import pytest

from sufdec.drafters.base import abilities, check_drafter
from sufdec.drafters.control import ControlState, StepOutcome
from sufdec.drafters.service import DraftService
from sufdec.drafters.settings import DraftSettings
from sufdec.suffix.draft import Draft


class Recorder:
    """Has every optional method; declares only ``declared``."""

    def __init__(self, declared: frozenset[str]) -> None:
        self.abilities = declared
        self.calls: list[str] = []

    def begin(self, prompt_ids):
        self.calls.append("begin")

    def draft(self, max_nodes):
        return Draft([5], [-1], [0.9])

    def observe(self, new_ids):
        self.calls.append("observe")

    def end(self, output_ids, finished):
        self.calls.append("end")

    def pace(self, rule):
        self.calls.append("pace")

    def prefill(self):
        self.calls.append("prefill")

    def feedback(self, outcome):
        self.calls.append("feedback")

    def use_tree(self, tree):
        self.calls.append("use_tree")


def run_one(drafter: Recorder) -> list[str]:
    service = DraftService(DraftSettings(sizing="fixed"), drafter=drafter, controls=ControlState.flat())
    request = service.start([1, 2, 3])
    _, verified = request.propose(max_depth=4)
    request.feedback(StepOutcome(verified, 1, [5, 6]))
    request.use_tree(None)
    request.finish([5, 6], True)
    return drafter.calls


def test_undeclared_methods_are_never_called() -> None:
    assert run_one(Recorder(frozenset())) == ["begin", "observe", "end"]


def test_declared_abilities_are_used_each_at_its_point() -> None:
    every = frozenset({"pace", "prefill", "feedback", "use_tree"})
    assert run_one(Recorder(every)) == ["pace", "begin", "prefill", "feedback", "use_tree", "end"]


def test_a_declared_ability_without_its_method_is_refused() -> None:
    class Wrapper:  # declares what it wraps, forwards only the four calls
        abilities = frozenset({"prefill"})
        begin = draft = observe = end = staticmethod(lambda *a: None)

    with pytest.raises(TypeError, match="lacks prefill"):
        check_drafter(Wrapper())
    with pytest.raises(TypeError, match="lacks prefill"):
        DraftService(DraftSettings(), drafter=Wrapper())
    with pytest.raises(TypeError, match="unknown abilities teleport"):
        check_drafter(type("Odd", (Recorder,), {"abilities": frozenset({"teleport"})})(frozenset({"teleport"})))


def test_the_built_in_drafters_declare_what_they_do() -> None:
    from sufdec.drafters.base import NullDrafter
    from sufdec.drafters.hybrid import HybridDrafter
    from sufdec.drafters.suffix import SuffixDrafter

    assert abilities(NullDrafter()) == frozenset()
    assert abilities(SuffixDrafter(None)) == {"use_tree"}
    assert HybridDrafter.abilities == {"feedback", "use_tree"}
