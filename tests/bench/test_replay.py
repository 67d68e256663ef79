"""Model-free replay (sufdec.bench.replay): its config, its drafts, its protocols. No torch."""

from __future__ import annotations

import json
import random

import pytest

from sufdec.bench.replay import ReplayConfig, accepted_length, replay
from sufdec.drafters.settings import DraftSettings
from sufdec.drafters.sizing import best_chain
from sufdec.suffix import RequestTree, SuffixIndex, draft_both
from sufdec.suffix.draft import Draft


def _corpus(seed: int = 0, n: int = 40) -> list[list[int]]:
    """Outputs built from a few shared phrases, so the trees have something to match."""
    rnd = random.Random(seed)
    phrases = [[rnd.randrange(50) for _ in range(rnd.randrange(3, 9))] for _ in range(8)]
    return [[t for _ in range(rnd.randrange(2, 6)) for t in rnd.choice(phrases)] for _ in range(n)]


def _split(seqs):
    n = int(len(seqs) * 0.8)
    return seqs[:n], [(s[:3], s) for s in seqs[n:]]


def _manual_tau(train, held, settings: DraftSettings) -> float:
    """The replay walk spelled out with draft_both (what replay did before it used the drafter)."""
    if settings.spec == "chain":  # a chain drafter drafts one path in paper mode (DraftSettings.single_path)
        settings = settings.replace(single_path=True)
    tree = SuffixIndex(max_depth=settings.max_depth)
    for i, s in enumerate(train):
        tree.add(i, s)
    tokens = steps = 0
    for prompt, output in held:
        request = RequestTree(prompt, max_depth=settings.max_depth)
        matcher = tree.matcher()
        matcher.feed(prompt)
        pos = 0
        while pos < len(output):
            draft = draft_both(matcher, request, settings)
            if settings.spec == "chain":
                draft = best_chain(draft)
            step = output[pos : pos + accepted_length(draft, output[pos:]) + 1]
            pos += len(step)
            request.extend(step)
            matcher.feed(step)
            steps += 1
        tokens += len(output)
    return tokens / steps


def test_config_embeds_draft_settings_and_reads_well():
    cfg = ReplayConfig(DraftSettings.preset("paper", spec="chain", max_spec_tokens=16), trees="global", online=True)
    assert cfg.label == "paper/global/chain/16/online"
    d = cfg.to_dict()
    assert d["label"] == cfg.label and d["trees"] == "global" and d["protocol"] == "online"
    assert d["draft"]["max_spec_factor"] == 4.0 and d["draft"]["min_token_prob"] == 0.1
    json.dumps(d)
    assert ReplayConfig().draft == DraftSettings()
    with pytest.raises(ValueError, match="trees"):
        ReplayConfig(trees="forest")


@pytest.mark.parametrize("preset", ["paper", "merged"])
@pytest.mark.parametrize("spec", ["tree", "chain"])
def test_replay_walk_matches_drafting_spelled_out(preset, spec):
    train, held = _split(_corpus())
    settings = DraftSettings.preset(preset, spec=spec, max_spec_tokens=12)
    res = replay(train, held, ReplayConfig(settings))
    assert res.records == len(held) and res.tokens == sum(len(o) for _, o in held)
    assert res.tau == pytest.approx(_manual_tau(train, held, settings))
    assert res.tau > 1.0
    out = res.to_dict()
    assert out["config"]["label"] == f"{preset}/both/{spec}/12/frozen" and out["tau"] > 1.0


def test_chains_are_chains():
    train, held = _split(_corpus(1))
    drafts: list[Draft] = []
    for preset in ("paper", "merged"):
        drafter = ReplayConfig(DraftSettings.preset(preset, spec="chain")).drafter(_index(train))
        for prompt, output in held:
            drafter.begin(prompt + output[3:10])
            drafts.append(drafter.draft(32))
    assert any(len(d) > 1 for d in drafts)
    for d in drafts:
        assert list(d.parents) == list(range(-1, len(d) - 1))


def _index(train) -> SuffixIndex:
    tree = SuffixIndex()
    for i, s in enumerate(train):
        tree.add(i, s)
    return tree


def test_trees_and_protocols():
    seqs = _corpus(2)
    train, held = _split(seqs)
    held = held + held  # the same outputs again: online has seen them by the second pass
    settings = DraftSettings.preset("merged", max_spec_tokens=16)
    frozen = replay(train, held, ReplayConfig(settings))
    online = replay(train, held, ReplayConfig(settings, online=True))
    assert online.tau > frozen.tau
    request_only = replay(train, held, ReplayConfig(settings, trees="request", online=True))
    global_only = replay(train, held, ReplayConfig(settings, trees="global"))
    assert request_only.tau >= 1.0 and global_only.tau >= 1.0
    assert replay([], held, ReplayConfig(settings, trees="request")).tau == request_only.tau  # never learns
