"""The many-hosts replay: sharing can only add what other hosts learned, a new host that
replays the table starts where the others are, and the routings send what they say."""

from __future__ import annotations

import random

from sufdec.bench.hosts import agent_tasks, round_robin, run_hosts
from sufdec.bench.replay import ReplayConfig
from sufdec.drafters.settings import DraftSettings


def corpus(n: int, seed: int = 0) -> list[tuple[list[int], list[int]]]:
    """Outputs built from a few phrases, so that what one host learns helps the others."""
    rng = random.Random(seed)
    phrases = [[rng.randrange(100, 500) for _ in range(8)] for _ in range(12)]
    return [([1, 2, 3, rng.randrange(50)], [t for p in rng.sample(phrases, 3) for t in p]) for _ in range(n)]


CONFIG = ReplayConfig(DraftSettings(max_spec_tokens=16), trees="both")


def test_sharing_helps_every_host_and_the_new_one_most() -> None:
    routed = round_robin(corpus(240), hosts=4)
    alone = run_hosts(routed, 4, CONFIG, shared=False, join_at=120)
    shared = run_hosts(routed, 4, CONFIG, shared=True, join_at=120)
    assert alone.result.tokens == shared.result.tokens  # the same requests, walked whole
    assert shared.result.tau > alone.result.tau
    assert len(shared.newcomer) == len(alone.newcomer) == 24  # every 5th request after it joined
    assert shared.to_dict()["newcomer_tau_first_20"] > alone.to_dict()["newcomer_tau_first_20"]
    assert shared.catch_up_requests() == 0  # it replayed the table: at the others' level at once
    assert alone.catch_up_requests() is None or alone.catch_up_requests() > 0


def test_one_host_is_the_same_shared_or_not() -> None:
    routed = round_robin(corpus(60), hosts=1)
    assert run_hosts(routed, 1, CONFIG, shared=False).result.tau == run_hosts(routed, 1, CONFIG, shared=True).result.tau


def test_agent_steps_land_on_consecutive_hosts_with_the_task_so_far() -> None:
    questions = [(f"db{i // 8}", [10 + i], [200 + i, 201 + i]) for i in range(16)]  # two databases of 8
    routed = agent_tasks(questions, hosts=4, steps=4, in_flight=1)
    assert len(routed) == 16
    first_task = routed[:4]
    hosts = [h for h, _ in first_task]
    assert hosts == [(hosts[0] + s) % 4 for s in range(4)]
    (_, (p0, a0)), (_, (p1, _)) = first_task[0], first_task[1]
    assert p1[: len(p0) + len(a0)] == p0 + a0  # the next step's prompt holds the task so far
