"""Many hosts, model-free: what sharing the corpus is worth when a load balancer spreads a
workload's requests over several hosts (``sufdec bench hosts``).

Each request is routed to a host; the host drafts it from its own trees (the engine's
``SuffixDrafter``, walked as ``sufdec.bench.replay`` walks a held-out output) and then
learns it. Without sharing, a host's global tree holds what that host learned; with
sharing (``sufdec.share``: every host follows the table), every host's tree holds what any
host learned (notifications arrive in milliseconds, far below a request's time, so no lag
is modelled). ``tau`` is tokens per step, as in the replay benchmark.

Routings: ``requests`` (round robin over the requests in a shuffled order, a load
balancer) and ``agent`` (tasks of ``steps`` follow-up questions on one database, each
step's prompt holding the task so far, and consecutive steps of a task on different hosts,
several tasks in flight: an agent whose next step lands elsewhere). A new host joins at
``join_at``, and from then on takes its turn: without sharing it starts cold, with sharing
it replays the table first. Reported: its tau over its first requests against the others'
over the same stretch, and how many requests it takes to reach 95% of their tau.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from sufdec.bench.replay import ReplayConfig, ReplayResult, walk
from sufdec.suffix import SuffixIndex

Pair = tuple[list[int], list[int]]  # (prompt ids, output ids)


@dataclass
class HostsRun:
    """One run: tau overall and per host, and the new host's catch-up."""

    shared: bool
    hosts: int
    result: ReplayResult = field(default_factory=lambda: ReplayResult(config={}))
    per_host: list[ReplayResult] = field(default_factory=list)
    newcomer: list[float] = field(default_factory=list)  # its tau per request, in order
    others_after_join: ReplayResult = field(default_factory=lambda: ReplayResult(config={}))
    # after the join, every request: (served by the new host, tokens, steps)
    timeline: list[tuple[bool, int, int]] = field(default_factory=list)

    def catch_up_requests(self, window: int = 10, share: float = 0.95) -> int | None:
        """Requests the new host serves before its tau over ``window`` of its requests
        reaches ``share`` of the others' tau over the same stretch of the run (None: never,
        within the run)."""
        mine = [i for i, (new, _, _) in enumerate(self.timeline) if new]
        for k in range(window, len(mine) + 1):
            lo, hi = mine[k - window], mine[k - 1]
            stretch = self.timeline[lo : hi + 1]
            own = [(t, s) for new, t, s in stretch if new]
            rest = [(t, s) for new, t, s in stretch if not new]
            if not rest:
                continue
            tau_own = sum(t for t, _ in own) / max(1, sum(s for _, s in own))
            tau_rest = sum(t for t, _ in rest) / max(1, sum(s for _, s in rest))
            if tau_own >= share * tau_rest:
                return k - window
        return None

    def to_dict(self) -> dict:
        first = self.newcomer[:20]
        return {
            "shared": self.shared,
            "hosts": self.hosts,
            "tau": round(self.result.tau, 4),
            "acceptance_rate": round(self.result.acceptance_rate, 4),
            "tau_per_host": [round(r.tau, 3) for r in self.per_host],
            "newcomer_requests": len(self.newcomer),
            "newcomer_tau_first_20": round(sum(first) / len(first), 4) if first else None,
            "others_tau_after_join": round(self.others_after_join.tau, 4),
            "newcomer_catch_up_requests": self.catch_up_requests(),
        }


def round_robin(pairs: Sequence[Pair], hosts: int, seed: int = 0) -> list[tuple[int, Pair]]:
    """The requests in a shuffled order, host i % hosts for the i-th."""
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    return [(i % hosts, pairs[j]) for i, j in enumerate(order)]


def agent_tasks(
    questions: Sequence[tuple[str, list[int], list[int]]],
    hosts: int,
    *,
    steps: int = 4,
    in_flight: int = 4,
    joiner: str = "\n",
    encode=None,
    seed: int = 0,
) -> list[tuple[int, Pair]]:
    """Tasks of ``steps`` follow-up questions on one database: ``questions`` are (database,
    question prompt ids, answer ids) in dataset order; a step's prompt is the task's earlier
    prompts and answers followed by its own question (what an agent sends), consecutive
    steps of a task go to consecutive hosts, and ``in_flight`` tasks are interleaved."""
    by_db: dict[str, list[tuple[list[int], list[int]]]] = {}
    for db, q, a in questions:
        by_db.setdefault(db, []).append((q, a))
    tasks = []
    for items in by_db.values():
        tasks += [items[i : i + steps] for i in range(0, len(items) - steps + 1, steps)]
    random.Random(seed).shuffle(tasks)
    out: list[tuple[int, Pair]] = []
    for start in range(0, len(tasks), in_flight):
        group = tasks[start : start + in_flight]
        for s in range(steps):
            for t, task in enumerate(group):
                context = [tok for q, a in task[:s] for tok in q + a]
                q, a = task[s]
                out.append(((start + t + s) % hosts, (context + q, a)))
    return out


def run_hosts(
    routed: Sequence[tuple[int, Pair]],
    hosts: int,
    config: ReplayConfig,
    *,
    shared: bool,
    join_at: int | None = None,
) -> HostsRun:
    """Replay ``routed`` requests (host, pair) over ``hosts`` hosts, sharing or not; a new
    host joins at request ``join_at`` and takes every ``hosts + 1``-th request after it."""
    depth = config.draft.max_depth
    trees = [SuffixIndex(max_depth=depth) for _ in range(hosts + 1)]
    run = HostsRun(shared, hosts, per_host=[ReplayResult(config={}) for _ in range(hosts + 1)])
    budget = config.draft.max_spec_tokens
    next_id = 0
    for i, (host, (prompt, output)) in enumerate(routed):
        joined = join_at is not None and i >= join_at
        if joined and (i - join_at) % (hosts + 1) == hosts:
            host = hosts
        tree = trees[0] if shared else trees[host]
        drafter = config.drafter(tree)
        mine = ReplayResult(config={})
        steps = walk(drafter, prompt, list(output), budget, mine)
        for into in (run.result, run.per_host[host]) + ((run.others_after_join,) if joined and host != hosts else ()):
            into.add(mine)
        if host == hosts:
            run.newcomer.append(len(output) / steps if steps else 0.0)
        if joined:
            run.timeline.append((host == hosts, len(output), steps))
        tree.add(next_id, list(output))
        next_id += 1
    if join_at is None:
        run.per_host.pop()
    return run
