"""Acceptance: walk the verified tree with the target model's own choices.

Greedy: at each row take the argmax of the (repetition-penalised) logits; descend while it
is a child, then emit it as the bonus token. Sampling: at each row draw y from the target's
processed distribution for that row's context; descend while y is a child, else emit y and
stop. Every emitted token is drawn from exactly the distribution plain decoding would use,
so the output distribution is the target's for any deterministic draft.

Logits are processed by transformers' own processors in the order ``generate()`` applies
them (repetition penalty, then temperature, top-k, top-p, min-p), in float32 as it does.
Draws come from a private generator seeded once per request, created on the device of the
logits (the LM head's device, which differs from the first layer's under a device map).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import (
    LogitsProcessorList,
    MinPLogitsWarper,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from sufdec.engine.tree import TreeLayout


@dataclass(frozen=True)
class SamplingParams:
    """temperature 0 means greedy; top_k 0, top_p 1 and min_p None mean off."""

    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    min_p: float | None = None

    @property
    def do_sample(self) -> bool:
        return self.temperature > 0.0


@dataclass(frozen=True)
class AcceptResult:
    rows: list[int]  # accepted tree rows, root excluded, in path order (ascending)
    tokens: list[int]  # the tokens of those rows, then the bonus token


def build_processors(params: SamplingParams) -> LogitsProcessorList:
    """The processors ``generate()`` would build for these settings, in its order."""
    procs = LogitsProcessorList()
    if params.repetition_penalty != 1.0:
        procs.append(RepetitionPenaltyLogitsProcessor(float(params.repetition_penalty)))
    if params.do_sample:
        if params.temperature != 1.0:
            procs.append(TemperatureLogitsWarper(float(params.temperature)))
        if params.top_k:
            procs.append(TopKLogitsWarper(top_k=int(params.top_k), min_tokens_to_keep=1))
        if params.top_p < 1.0:
            procs.append(TopPLogitsWarper(top_p=float(params.top_p), min_tokens_to_keep=1))
        if params.min_p is not None:
            procs.append(MinPLogitsWarper(min_p=float(params.min_p), min_tokens_to_keep=1))
    return procs


class Acceptor:
    """Picks the accepted path and bonus token from one verification forward."""

    def __init__(self, params: SamplingParams, seed: int | None = None):
        self.params = params
        self.processors = build_processors(params)
        if seed is None and params.do_sample:  # one draw from torch's global generator, which is
            seed = int(torch.randint(0, 2**62, (), dtype=torch.int64))  # not reseeded: manual_seed() reproduces it
        self.seed = seed
        self._generators: dict[torch.device, torch.Generator] = {}
        self._needs_context = params.repetition_penalty != 1.0

    def generator(self, device: torch.device) -> torch.Generator | None:
        """The request's generator on ``device`` (None when greedy)."""
        if not self.params.do_sample:
            return None
        gen = self._generators.get(device)
        if gen is None:
            gen = self._generators[device] = torch.Generator(device=device)
            gen.manual_seed(self.seed)
        return gen

    def accept(self, layout: TreeLayout, logits: torch.Tensor, context: torch.Tensor) -> AcceptResult:
        """``logits`` [q, V] for the layout's rows; ``context`` [1, L] all tokens so far,
        the root included (the repetition penalty looks at it)."""
        if not self.params.do_sample and not self._needs_context:
            if logits.device.type == "cpu":  # argmax only the rows the walk visits
                return _walk_argmax(layout, _LazyArgmax(logits))
            return _walk_argmax(layout, logits.argmax(dim=-1).tolist())  # one sync
        return self._walk(layout, logits, context)

    def _walk(self, layout: TreeLayout, logits: torch.Tensor, context: torch.Tensor) -> AcceptResult:
        rows: list[int] = []
        tokens: list[int] = []
        row = 0
        while True:
            y = self._choose(logits[row], context, tokens)
            child = layout.children[row].get(y)
            tokens.append(y)
            if child is None:
                return AcceptResult(rows, tokens)
            rows.append(child)
            row = child

    def _choose(self, row_logits: torch.Tensor, context: torch.Tensor, path: list[int]) -> int:
        scores = row_logits.to(dtype=torch.float32, copy=True)[None]  # [1, V]
        if self.processors:
            ids = context
            if self._needs_context and path:
                extra = torch.tensor([path], dtype=context.dtype, device=context.device)
                ids = torch.cat([context, extra], dim=1)  # [1, L + depth]
            scores = self.processors(ids, scores)
        if not self.params.do_sample:
            return int(scores.argmax(dim=-1))
        probs = torch.softmax(scores, dim=-1)
        return int(torch.multinomial(probs, num_samples=1, generator=self.generator(probs.device)))


class _LazyArgmax:
    """``best[row]`` computed on demand: on a CPU an argmax over every row of a wide
    tree costs more than the walk, which visits only depth + 1 rows."""

    def __init__(self, logits: torch.Tensor):
        self.logits = logits

    def __getitem__(self, row: int) -> int:
        return int(self.logits[row].argmax())


def _walk_argmax(layout: TreeLayout, best) -> AcceptResult:
    rows: list[int] = []
    tokens: list[int] = []
    row = 0
    while True:
        y = best[row]
        tokens.append(y)
        child = layout.children[row].get(y)
        if child is None:
            return AcceptResult(rows, tokens)
        rows.append(child)
        row = child
