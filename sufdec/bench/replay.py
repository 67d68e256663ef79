"""Model-free replay: how well would the suffix trees have drafted on real outputs?

Build the global tree from a train split of outputs, then walk each held-out output
token by token: draft at the current position, count how many drafted tokens match the
true continuation (following the tree), advance by accepted + 1 (the target's bonus
token). ``tau`` = tokens walked / steps is the mean accepted tokens per step a
lossless verifier would reach with a perfect model of these outputs. This is how drafting
quality is tuned without running a model.

Protocols (see docs/BENCHMARKS.md): ``frozen`` keeps the global tree at the train split;
``online`` adds each held-out output to the global tree once it has been walked.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

from sufdec.drafters import registry
from sufdec.drafters.settings import DraftSettings
from sufdec.drafters.suffix import SuffixDrafter
from sufdec.suffix import SuffixIndex
from sufdec.suffix.draft import Draft

TREES = ("global", "request", "both")


@dataclass(frozen=True)
class ReplayConfig:
    """One drafting configuration to replay: what to draft (``draft``), from which trees, and
    whether the global tree learns the held-out outputs (``online``)."""

    draft: DraftSettings = field(default_factory=DraftSettings)
    trees: str = "both"  # global | request | both
    online: bool = False

    def __post_init__(self) -> None:
        if self.trees not in TREES:
            raise ValueError(f"trees must be one of {', '.join(TREES)}, not {self.trees!r}")
        if not isinstance(self.draft, DraftSettings):
            raise TypeError("draft must be a DraftSettings (see sufdec.suffix.settings)")

    @property
    def protocol(self) -> str:
        return "online" if self.online else "frozen"

    @property
    def label(self) -> str:
        """``mode/trees/spec/budget/protocol``, for instance ``merged/both/chain/32/frozen``."""
        d = self.draft
        return f"{d.mode}/{self.trees}/{d.spec}/{d.max_spec_tokens}/{self.protocol}"

    def to_dict(self) -> dict:
        """The label, the trees, the protocol and every drafting setting (for JSON results)."""
        return {"label": self.label, "trees": self.trees, "protocol": self.protocol, "draft": asdict(self.draft)}

    def drafter(self, global_tree: SuffixIndex | None) -> SuffixDrafter:
        """The engine's own drafter over the trees this configuration uses."""
        settings = self.draft if self.trees != "global" else self.draft.replace(use_request_tree=False)
        return SuffixDrafter(
            global_tree if self.trees != "request" else None, settings, chain=registry.kind_of(settings.spec).chain
        )


@dataclass
class ReplayResult:
    config: dict
    records: int = 0
    tokens: int = 0
    steps: int = 0
    drafted: int = 0
    accepted: int = 0
    speculate_s: float = 0.0
    accepted_by_match_len: dict[int, list[int]] = field(default_factory=dict)

    @property
    def tau(self) -> float:
        return self.tokens / self.steps if self.steps else 0.0

    @property
    def acceptance_rate(self) -> float:
        return self.accepted / self.drafted if self.drafted else 0.0

    def add(self, other: "ReplayResult") -> None:
        """Count ``other``'s records in this result too (its config aside)."""
        for name in ("records", "tokens", "steps", "drafted", "accepted", "speculate_s"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for match_len, (accepted, drafts) in other.accepted_by_match_len.items():
            slot = self.accepted_by_match_len.setdefault(match_len, [0, 0])
            slot[0] += accepted
            slot[1] += drafts

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("accepted_by_match_len")
        d["tau"] = round(self.tau, 4)
        d["acceptance_rate"] = round(self.acceptance_rate, 4)
        d["speculate_us_per_step"] = round(1e6 * self.speculate_s / self.steps, 2) if self.steps else 0.0
        d["accepted_by_match_len"] = {
            str(k): round(v[0] / v[1], 3) for k, v in sorted(self.accepted_by_match_len.items())
        }
        return d


def accepted_length(draft: Draft, truth: Sequence[int]) -> int:
    """How many tokens of ``truth`` the draft tree predicts, following matching children."""
    if not draft.token_ids or not truth:
        return 0
    parent, depth = -1, 0
    tokens, parents = draft.token_ids, draft.parents
    while depth < len(truth):
        want = truth[depth]
        nxt = -1
        for i in range(parent + 1, len(tokens)):  # children come after their parent
            if parents[i] == parent and tokens[i] == want:
                nxt = i
                break
        if nxt < 0:
            break
        parent, depth = nxt, depth + 1
    return depth


def walk(drafter: SuffixDrafter, prompt: Sequence[int], output: list[int], budget: int, result: ReplayResult) -> int:
    """Walk one output with ``drafter`` (draft, count the accepted tokens, advance by them
    + 1), adding to ``result``; returns the steps it took."""
    drafter.begin(list(prompt))
    pos, steps = 0, 0
    while pos < len(output):
        t0 = time.perf_counter()
        draft = drafter.draft(budget)
        result.speculate_s += time.perf_counter() - t0
        acc = accepted_length(draft, output[pos:])
        steps += 1
        result.drafted += len(draft)
        result.accepted += acc
        if len(draft):
            slot = result.accepted_by_match_len.setdefault(draft.match_len, [0, 0])
            slot[0] += acc
            slot[1] += 1
        step = output[pos : pos + acc + 1]
        pos += len(step)
        drafter.observe(step)
    drafter.end(output, True)
    result.steps += steps
    result.records += 1
    result.tokens += len(output)
    return steps


def replay(
    train: Sequence[Sequence[int]],
    held_out: Sequence[tuple[Sequence[int], Sequence[int]]],
    config: ReplayConfig,
    on_record: Callable[[int], None] | None = None,
) -> ReplayResult:
    """Replay ``held_out`` (prompt ids, output ids) pairs against a tree built from ``train``.

    Drafts come from the engine's ``SuffixDrafter`` (so a chain is what the decode loop
    would verify: the merged draft's most probable path, or the paper's single path); only
    its ``draft`` call is timed.
    """
    result = ReplayResult(config=config.to_dict())
    uses_global = config.trees in ("global", "both")
    global_tree = SuffixIndex(max_depth=config.draft.max_depth)
    if uses_global:
        for i, seq in enumerate(train):
            global_tree.add(i, list(seq))
    drafter = config.drafter(global_tree)
    budget = config.draft.max_spec_tokens
    next_id = len(train)
    for prompt, output in held_out:
        output = list(output)
        walk(drafter, prompt, output, budget, result)
        if config.online and uses_global:
            global_tree.add(next_id, output)
            next_id += 1
        if on_record is not None:
            on_record(1)
    return result
