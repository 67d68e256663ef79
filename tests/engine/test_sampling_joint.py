"""Speculative sampling keeps the target's JOINT distribution over several tokens.

The drafts are trees three deep, so rows below depth 1 are verified and sampled from; a
wrong distribution at any row of an accepted path shows in the joint of the first tokens.
With top-k 3 every position has at most three outcomes, so the exact joint of the first
three (and four) tokens is enumerated with the model itself: full forwards over prompt +
prefix, processed in float32 by transformers' own processors in generate()'s order
(repetition penalty over prompt + prefix, temperature, top-k). Speculative samples, one
seed each, must fit it (chi-squared, cells with expected count < 5 pooled).

The drafter is a deterministic function of the context: the target's processed top-3
at every node (sometimes leaving one out, so some walks end inside the tree and the next
step starts mid-request), a duplicate sibling under each parent (layout_tree keeps the
first copy as the walk's child; the second is verified but unreachable), and a wrong
branch. With a repetition penalty, the context of a row is prompt + that row's path: a
penalty computed without the path, or over the row's children, changes the joint.
"""

from __future__ import annotations

import pytest
import torch
from transformers import (
    LogitsProcessorList,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
)

from sufdec.drafters.base import ContextDrafter
from sufdec.drafters.control import ControlState
from sufdec.drafters.settings import DraftSettings
from sufdec.engine import GenerationConfig, SpeculativeGenerator, layout_tree
from sufdec.suffix.draft import Draft

from .helpers import char_tokenizer, random_prompts, tiny_model

N_SAMPLES = 3000
MAX_NEW = 4  # the first step verifies depth <= 3 (4 tokens with the bonus)
TOP_K = 3

CASES = {
    # kind, attention, model seed, LM-head sharpening, prompt (seed, length), sampling
    "llama-sdpa-penalty": dict(
        kind="llama",
        attn="sdpa",
        seed=2,
        sharpen=10.0,
        prompt=(2, 6),
        sampling=dict(temperature=1.0, top_k=TOP_K, repetition_penalty=1.3),
    ),
    "llama-eager": dict(
        kind="llama", attn="eager", seed=3, sharpen=10.0, prompt=(1, 6), sampling=dict(temperature=0.8, top_k=TOP_K)
    ),
    "gemma3-sliding-penalty": dict(
        kind="gemma3",
        attn="sdpa",
        seed=2,
        sharpen=10.0,
        prompt=(0, 14),
        sampling=dict(temperature=1.0, top_k=TOP_K, repetition_penalty=1.3),
    ),
}


def hf_processors(sampling: dict) -> LogitsProcessorList:
    """The processors generate() builds for these settings, in its order."""
    procs = LogitsProcessorList()
    if sampling.get("repetition_penalty", 1.0) != 1.0:
        procs.append(RepetitionPenaltyLogitsProcessor(sampling["repetition_penalty"]))
    if sampling["temperature"] != 1.0:
        procs.append(TemperatureLogitsWarper(sampling["temperature"]))
    procs.append(TopKLogitsWarper(top_k=sampling["top_k"], min_tokens_to_keep=1))
    return procs


class Target:
    """The target's processed next-token distribution for any context (memoised)."""

    def __init__(self, model, sampling: dict):
        self.model, self.procs = model, hf_processors(sampling)
        self._memo: dict[tuple[int, ...], torch.Tensor] = {}
        self._support: dict[tuple[int, ...], list[int]] = {}

    @torch.no_grad()
    def probs(self, ctx) -> torch.Tensor:
        key = tuple(ctx)
        if key not in self._memo:
            ids = torch.tensor([key])
            logits = self.model(ids).logits[0, -1].float()[None]
            self._memo[key] = torch.softmax(self.procs(ids, logits), dim=-1)[0]
        return self._memo[key]

    def support(self, ctx) -> list[int]:
        """The tokens with nonzero probability, most likely first."""
        key = tuple(ctx)
        if key not in self._support:
            p = self.probs(key)
            order = p.argsort(descending=True)
            self._support[key] = order[: int((p > 0).sum())].tolist()
        return self._support[key]

    def joint(self, prompt: list[int], depth: int) -> dict[tuple[int, ...], float]:
        """Exact probability of every sequence of ``depth`` tokens."""
        out = {(): 1.0}
        for _ in range(depth):
            nxt = {}
            for prefix, p in out.items():
                probs = self.probs(prompt + list(prefix))
                for t in self.support(prompt + list(prefix)):
                    nxt[prefix + (t,)] = p * float(probs[t])
            out = nxt
        return out


class JointDrafter(ContextDrafter):
    """Drafts, from the context alone, a tree three deep of the target's likely tokens,
    with a duplicate sibling and a wrong branch under each parent above the last level."""

    def __init__(self, target: Target, vocab: int, depth: int = 3):
        super().__init__()
        self.target, self.vocab, self.depth = target, vocab, depth
        self._memo: dict[tuple[int, ...], Draft] = {}

    def draft(self, max_nodes: int) -> Draft:
        key = tuple(self.context)
        if key not in self._memo:
            self._memo[key] = self._draft(list(key))
        return self._memo[key]

    def _draft(self, context: list[int]) -> Draft:
        toks: list[int] = []
        parents: list[int] = []
        depths: list[int] = []

        def add(tok: int, parent: int, depth: int) -> int:
            toks.append(int(tok))
            parents.append(parent)
            depths.append(depth)
            return len(toks) - 1

        def grow(ctx: list[int], parent: int, depth: int) -> None:
            if depth > self.depth:
                return
            cands = self.target.support(ctx)
            p = self.target.probs(ctx)
            wrong = int(p.argmin())  # never sampled: a branch that is always rejected
            # leave the least likely candidate out under some parents (walks then end here)
            keep = cands if (len(ctx) + depth + cands[0]) % 3 else cands[:-1]
            dup = keep[depth % len(keep)]
            if depth == 2:  # the duplicate comes FIRST here: it is the copy the walk takes
                first = add(dup, parent, depth)
                grow(ctx + [dup], first, depth + 1)
                for t in keep:
                    me = add(t, parent, depth)
                    if t != dup:
                        grow(ctx + [t], me, depth + 1)
                    elif depth < self.depth:
                        add(wrong, me, depth + 1)  # under the unreachable copy
            else:
                for t in keep:
                    grow(ctx + [t], add(t, parent, depth), depth + 1)
                again = add(dup, parent, depth)  # the unreachable second copy
                if depth < self.depth:
                    add(wrong, again, depth + 1)
            if depth < self.depth:
                add(wrong, parent, depth)

        grow(context, -1, 1)
        probs = [0.9**d for d in depths]
        return Draft(toks, parents, probs, float(sum(probs)), 1)


def chi2_pvalue(counts: dict, exact: dict, n: int) -> float:
    """Goodness of fit; cells expected below 5 are pooled into one (kept if it reaches 5)."""
    big = [c for c, p in exact.items() if p * n >= 5]
    obs = [counts.get(c, 0) for c in big]
    exp = [exact[c] * n for c in big]
    rest_obs, rest_exp = n - sum(obs), n - sum(exp)
    if rest_exp >= 5:
        obs.append(rest_obs)
        exp.append(rest_exp)
    else:
        if rest_obs > max(10, 3 * rest_exp):
            return 0.0  # many samples in cells the target (nearly) never produces
    stat = sum((o - e) ** 2 / e for o, e in zip(obs, exp))
    df = len(obs) - 1
    return float(
        torch.special.gammaincc(
            torch.tensor(df / 2.0, dtype=torch.float64), torch.tensor(stat / 2.0, dtype=torch.float64)
        )
    )


def marginal(joint: dict, depth: int) -> dict:
    out: dict = {}
    for seq, p in joint.items():
        out[seq[:depth]] = out.get(seq[:depth], 0.0) + p
    return out


def build_case(name: str):
    case = CASES[name]
    model = tiny_model(case["kind"], seed=case["seed"], attn=case["attn"], sharpen=case["sharpen"])
    pseed, plen = case["prompt"]
    prompt = random_prompts(1, seed=pseed, lo=plen, hi=plen)[0]
    return model, prompt, case["sampling"]


def run_samples(model, prompt, sampling, n: int = N_SAMPLES):
    """``n`` speculative samples of MAX_NEW tokens (seeds 0..n-1): counts, steps, drafter."""
    target = Target(model, sampling)
    drafter = JointDrafter(target, model.config.vocab_size)
    gen = SpeculativeGenerator(model, char_tokenizer(), drafter, controls=ControlState.flat())
    draft = DraftSettings(sizing="fixed", max_spec_tokens=128)
    counts: dict[tuple[int, ...], int] = {}
    steps = 0
    deep = 0
    for seed in range(n):
        cfg = GenerationConfig(max_new_tokens=MAX_NEW, seed=seed, eos_token_ids=(), draft=draft, **sampling)
        res = gen.generate(prompt, cfg)
        key = tuple(res.token_ids)
        counts[key] = counts.get(key, 0) + 1
        steps += res.steps
        deep += res.step_results[0].accepted_nodes >= 2
    return target, counts, steps, deep


def test_drafts_have_depth_duplicates_and_wrong_branches():
    model, prompt, sampling = build_case("llama-sdpa-penalty")
    target = Target(model, sampling)
    drafter = JointDrafter(target, model.config.vocab_size)
    drafter.begin(prompt)
    d = drafter.draft(128)
    assert max(d.depths()) == 3 and len(d) <= 128
    layout = layout_tree(d, prompt[-1], len(prompt) - 1)
    dups = 0
    for row in range(layout.q):
        kids = [r for r in range(1, layout.q) if layout.parents[r] == row]
        toks = [layout.tokens[r] for r in kids]
        dups += len(toks) - len(set(toks))
        for t, r in layout.children[row].items():  # the first copy is the walk's child
            assert r == min(k for k in kids if layout.tokens[k] == t)
    assert dups >= 4
    # wrong branches: tokens the target never samples there
    assert any(target.probs(prompt)[t] == 0 for t in d.token_ids[:8])


@pytest.mark.parametrize("name", list(CASES))
def test_joint_distribution_of_first_tokens(name):
    model, prompt, sampling = build_case(name)
    target, counts, steps, deep = run_samples(model, prompt, sampling)
    exact = target.joint(prompt, MAX_NEW)
    assert abs(sum(exact.values()) - 1.0) < 1e-4
    assert sum(counts.values()) == N_SAMPLES
    impossible = sum(c for seq, c in counts.items() if seq not in exact)
    p3 = chi2_pvalue(marginal(counts, 3), marginal(exact, 3), N_SAMPLES)
    p4 = chi2_pvalue(counts, exact, N_SAMPLES)
    print(
        f"{name}: p(first 3) = {p3:.3g}, p(first 4) = {p4:.3g}, impossible samples = {impossible}, "
        f"steps/sample = {steps / N_SAMPLES:.2f}, deep first steps = {deep / N_SAMPLES:.2f}"
    )
    assert impossible == 0, f"{name}: {impossible} samples the target cannot produce"
    # drafts did the work: most samples took one step, accepting nodes below depth 1
    assert steps < 1.5 * N_SAMPLES and deep > 0.5 * N_SAMPLES
    assert p3 > 1e-3, f"{name}: joint of the first 3 tokens, chi2 p = {p3:.2e}"
    assert p4 > 1e-3, f"{name}: joint of the first 4 tokens, chi2 p = {p4:.2e}"


def test_penalty_matters_for_the_joint():
    """The penalty cases are sensitive: the joint without the penalty's effect from the
    path (the context at every row = the prompt only) is far from the exact one."""
    for name in ("llama-sdpa-penalty", "gemma3-sliding-penalty"):
        model, prompt, sampling = build_case(name)
        target = Target(model, sampling)
        exact = marginal(target.joint(prompt, MAX_NEW), 3)
        procs = hf_processors(sampling)
        with torch.no_grad():
            wrong = {(): 1.0}
            for _ in range(3):
                nxt = {}
                for prefix, p in wrong.items():
                    ids = torch.tensor([prompt + list(prefix)])
                    logits = model(ids).logits[0, -1].float()[None]
                    q = torch.softmax(procs(torch.tensor([prompt]), logits), -1)[0]  # path ignored
                    for t in (q > 0).nonzero().flatten().tolist():
                        nxt[prefix + (t,)] = p * float(q[t])
                wrong = nxt
        # expected chi2 noncentrality of N samples from the wrong joint
        shift = N_SAMPLES * sum((wrong.get(c, 0.0) - p) ** 2 / p for c, p in exact.items())
        assert shift > 150, f"{name}: a path-blind penalty would hardly show ({shift:.0f})"
