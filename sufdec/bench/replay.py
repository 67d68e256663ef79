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

from sufdec.suffix import RequestTree, SpecParams, SuffixIndex, draft_both
from sufdec.suffix.draft import Draft


@dataclass(frozen=True)
class ReplayConfig:
    """One drafting configuration to replay."""

    trees: str = "both"  # global | request | both
    use_tree: bool = True  # tree drafts (True) or path drafts
    max_spec_tokens: int = 32
    max_spec_factor: float = 4.0
    max_spec_offset: float = 0.0
    min_token_prob: float = 0.1
    max_depth: int = 64
    online: bool = False
    mode: str = "paper"  # paper | merged (see sufdec.suffix.SpecParams)

    @property
    def label(self) -> str:
        kind = "tree" if self.use_tree else "path"
        proto = "online" if self.online else "frozen"
        return f"{self.mode}/{self.trees}/{kind}/{self.max_spec_tokens}/{proto}"


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


def replay(
    train: Sequence[Sequence[int]],
    held_out: Sequence[tuple[Sequence[int], Sequence[int]]],
    config: ReplayConfig,
    on_record: Callable[[int], None] | None = None,
) -> ReplayResult:
    """Replay ``held_out`` (prompt ids, output ids) pairs against a tree built from ``train``."""
    result = ReplayResult(config=asdict(config))
    global_tree = SuffixIndex(max_depth=config.max_depth)
    if config.trees in ("global", "both"):
        for i, seq in enumerate(train):
            global_tree.add(i, list(seq))
    params = SpecParams(
        config.max_spec_tokens, config.max_spec_factor, config.max_spec_offset,
        config.min_token_prob, config.use_tree, config.mode if config.use_tree else "paper",
    )
    next_id = len(train)
    for prompt, output in held_out:
        output = list(output)
        request = RequestTree(list(prompt), max_depth=config.max_depth)
        matcher = global_tree.matcher()
        matcher.feed(list(prompt))
        pos = 0
        while pos < len(output):
            t0 = time.perf_counter()
            draft = draft_both(
                matcher if config.trees in ("global", "both") else None,
                request if config.trees in ("request", "both") else None,
                params,
            )
            result.speculate_s += time.perf_counter() - t0
            acc = accepted_length(draft, output[pos:])
            result.steps += 1
            result.drafted += len(draft)
            result.accepted += acc
            if len(draft):
                slot = result.accepted_by_match_len.setdefault(draft.match_len, [0, 0])
                slot[0] += acc
                slot[1] += 1
            step = output[pos : pos + acc + 1]
            pos += len(step)
            request.extend(step)
            matcher.feed(step)
        result.records += 1
        result.tokens += len(output)
        if config.online and config.trees in ("global", "both"):
            global_tree.add(next_id, output)
            next_id += 1
        if on_record is not None:
            on_record(1)
    return result
