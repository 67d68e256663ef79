"""The speculative decode loop: draft -> layout -> verify_forward -> accept -> commit_kv -> observe.

Invariant between steps: the KV cache holds every token of the request but the last one
(the root), which the next step forwards first, followed by the draft tree. Each step
yields a ``StepResult``; streaming, statistics and benchmarks all read those.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from sufdec.drafters.base import Drafter
from sufdec.drafters.control import ControlState, StepOutcome
from sufdec.drafters.service import DraftRequest, DraftService
from sufdec.drafters.sizing import CostModel
from sufdec.engine.accept import Acceptor, AcceptResult
from sufdec.engine.config import GenerationConfig, ResolvedGeneration, resolve_generation
from sufdec.engine.head import verify_forward_for
from sufdec.engine.kv import cache_kwargs, commit_path, mask_kinds, new_cache, settle
from sufdec.engine.stopping import StopStrings
from sufdec.engine.tree import TreeLayout, layer_masks, layout_tree
from sufdec.suffix.draft import Draft


@dataclass(frozen=True)
class StepTimings:
    """Seconds spent in each stage of one step."""

    draft: float = 0.0
    layout: float = 0.0
    forward: float = 0.0
    accept: float = 0.0
    commit: float = 0.0
    observe: float = 0.0

    @property
    def bookkeeping(self) -> float:
        """Engine overhead around the forward: layout, accept, commit."""
        return self.layout + self.accept + self.commit

    @property
    def total(self) -> float:
        return self.draft + self.layout + self.forward + self.accept + self.commit + self.observe


@dataclass(frozen=True)
class StepResult:
    index: int  # step number, 0-based
    tokens: list[int]  # tokens emitted this step (accepted path + bonus, after stops)
    drafted: int  # nodes the drafter proposed
    verified: int  # nodes verified (after sizing)
    accepted_nodes: int  # draft nodes accepted (the bonus token is not one)
    timings: StepTimings
    match_len: int = -1  # the draft's match length (-1: nothing drafted)
    finish_reason: str | None = None  # "eos" | "stop" | "length" when the request ended here

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None


@dataclass
class GenerationResult:
    text: str
    token_ids: list[int]  # generated tokens (prompt excluded)
    new_tokens: int
    steps: int
    tokens_per_step: list[int]  # tokens emitted per step (accepted draft nodes + the bonus token)
    tokens_per_s: float
    elapsed_s: float  # prefill included
    prefill_s: float
    finish_reason: str | None
    step_results: list[StepResult] = field(default_factory=list)
    drafting: dict = field(default_factory=dict)  # the drafting request's summary (DraftRequest.summary)

    @property
    def mean_tokens_per_step(self) -> float:
        """Tokens emitted per verification forward (1.0 is plain decoding)."""
        return self.new_tokens / self.steps if self.steps else 0.0

    def mean_timings_ms(self) -> dict[str, float]:
        """Mean milliseconds per step of each stage (and of the bookkeeping sum)."""
        n = max(len(self.step_results), 1)
        keys = ("draft", "layout", "forward", "accept", "commit", "observe", "bookkeeping")
        return {k: 1000.0 * sum(getattr(s.timings, k) for s in self.step_results) / n for k in keys}


@dataclass
class RequestState:
    """One request in flight. The cache holds ``ids[:-1]``; ``ids[-1]`` is the root."""

    ids: list[int]
    prompt_len: int
    cache: Any
    config: ResolvedGeneration
    acceptor: Acceptor
    drafting: DraftRequest
    eos: frozenset[int]
    stops: StopStrings
    steps: int = 0
    finish_reason: str | None = None

    @property
    def past_len(self) -> int:
        return len(self.ids) - 1

    @property
    def generated(self) -> list[int]:
        return self.ids[self.prompt_len :]

    @property
    def remaining(self) -> int:
        return self.config.max_new_tokens - (len(self.ids) - self.prompt_len)


class SpeculativeGenerator:
    """Lossless speculative decoding of a Hugging Face causal LM with draft trees.

    Drafts come from ``drafting``, a ``DraftService`` (``sufdec.drafters.service``: the
    registry's drafter for each request's spec, its draft control, learning), whose four
    verbs are all this loop uses. For a drafter of your own, ``drafter`` (one Drafter
    reused for every request: ``begin`` resets it) or ``drafter_factory`` (one per request)
    make a service over it; with none of the three, every request is plain decoding.
    ``controls``: what draft control learns across requests (cost curve, acceptance
    calibrations, Thompson-sampling posteriors) for such a service; by default the cost
    curve is measured on first use (cached per model, device and dtype). Each request's
    settings are resolved against the model's own ``generation_config``
    (see ``sufdec.engine.config``).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        drafter: Drafter | None = None,
        *,
        drafter_factory: Callable[[], Drafter] | None = None,
        controls: ControlState | None = None,
        drafting: DraftService | None = None,
    ):
        attn = getattr(model.config, "_attn_implementation", None) or "eager"
        if attn.startswith("flash") or attn not in ("sdpa", "eager"):
            raise ValueError(
                f"attention implementation {attn!r} cannot take tree masks: load the model "
                "with attn_implementation='sdpa' (or 'eager')"
            )
        if drafting is None:
            plain = drafter is None and drafter_factory is None
            drafting = DraftService(controls=controls, drafter=drafter, drafter_factory=drafter_factory, plain=plain)
        elif drafter is not None or drafter_factory is not None or controls is not None:
            raise ValueError("give drafting= alone: its service owns the drafter and the controls")
        self.model = model
        self.tokenizer = tokenizer
        self.drafting = drafting
        drafting.use_cost(self._measure_cost)
        self.device = model.get_input_embeddings().weight.device  # where input ids go (device maps too)
        self.mask_dtype = torch.bool if attn == "sdpa" else model.dtype
        self._layer_kinds = mask_kinds(model)
        self._forward = verify_forward_for(model)  # the model, its head the faster measured way

    # ------------------------------------------------------------------ public API
    def generate(
        self,
        prompt: str | Sequence[int],
        config: GenerationConfig | None = None,
        streamer: Any = None,
    ) -> GenerationResult:
        """Generate one completion; ``streamer`` gets ``put``/``end`` like in ``generate()``."""
        resolved = self.resolve(config)
        t0 = time.perf_counter()
        state = self._start(self._prompt_ids(prompt), resolved)
        prefill_s = time.perf_counter() - t0
        steps = list(self._run(state, streamer))
        elapsed = time.perf_counter() - t0
        gen = state.generated
        return GenerationResult(
            text=self.tokenizer.decode(gen, skip_special_tokens=True) if self.tokenizer is not None else "",
            token_ids=list(gen),
            new_tokens=len(gen),
            steps=len(steps),
            tokens_per_step=[len(s.tokens) for s in steps],
            tokens_per_s=len(gen) / elapsed if elapsed > 0 else 0.0,
            elapsed_s=elapsed,
            prefill_s=prefill_s,
            finish_reason=state.finish_reason,
            step_results=steps,
            drafting=state.drafting.summary(),
        )

    def stream(
        self,
        prompt: str | Sequence[int],
        config: GenerationConfig | None = None,
        streamer: Any = None,
    ) -> Iterator[StepResult]:
        """Yield one StepResult per decode step until EOS, a stop string or the length cap."""
        state = self._start(self._prompt_ids(prompt), self.resolve(config))
        yield from self._run(state, streamer)

    def resolve(self, config: GenerationConfig | None = None) -> ResolvedGeneration:
        """``config`` with the model's own generation defaults filled in (and the cost curve
        measured now if this is its first use, outside any request's time)."""
        resolved = resolve_generation(config or GenerationConfig(), self.model, self.tokenizer)
        if self.drafting.needs_cost(resolved.draft):
            self.cost_model()
        return resolved

    @property
    def controls(self) -> ControlState:
        """What draft control has learned across requests (the drafting service's)."""
        return self.drafting.controls

    def _run(self, state: RequestState, streamer: Any) -> Iterator[StepResult]:
        if streamer is not None:
            streamer.put(torch.tensor([state.ids]))
        finished = False
        try:
            while state.finish_reason is None:
                step = self.step(state)
                if streamer is not None and step.tokens:
                    streamer.put(torch.tensor(step.tokens))
                yield step
            finished = True
        finally:
            state.drafting.finish(state.generated, finished)
            if streamer is not None:
                streamer.end()

    def cost_model(self) -> CostModel:
        """The forward-cost curve draft control uses (measured on first call by default)."""
        return self.controls.cost_model()

    def _measure_cost(self) -> CostModel:
        from sufdec.engine.calibrate import cost_model_for

        return cost_model_for(self.model)

    # ------------------------------------------------------------------ request setup
    def _prompt_ids(self, prompt: str | Sequence[int]) -> list[int]:
        if isinstance(prompt, str):
            ids = self.tokenizer(prompt)["input_ids"]
        elif isinstance(prompt, torch.Tensor):
            ids = prompt.reshape(-1).tolist()
        else:
            ids = [int(t) for t in prompt]
        if not ids:
            raise ValueError("empty prompt")
        return ids

    def _start(self, prompt_ids: list[int], config: ResolvedGeneration) -> RequestState:
        state = RequestState(
            ids=list(prompt_ids),
            prompt_len=len(prompt_ids),
            cache=new_cache(self.model),
            config=config,
            acceptor=Acceptor(config.sampling, config.seed),
            drafting=self.drafting.start(prompt_ids, config.draft),
            eos=frozenset(config.eos),
            stops=StopStrings(self.tokenizer, config.stop),
        )
        self._prefill(state)
        return state

    @torch.inference_mode()
    def _prefill(self, state: RequestState) -> None:
        """Forward the prompt but its last token (the first step's root) in one pass."""
        if len(state.ids) > 1:
            ids = torch.tensor([state.ids[:-1]], dtype=torch.long, device=self.device)
            self.model(input_ids=ids, use_cache=True, logits_to_keep=1, **cache_kwargs(self.model, state.cache))
            settle(state.cache)

    # ------------------------------------------------------------------ one step
    @torch.inference_mode()
    def step(self, state: RequestState) -> StepResult:
        """Run the six stages once and return what happened."""
        t0 = time.perf_counter()
        raw, draft = self.draft(state)
        t1 = time.perf_counter()
        layout = self.layout(state, draft)
        t2 = time.perf_counter()
        logits = self.verify_forward(state, layout)
        t3 = time.perf_counter()
        result = self.accept(state, layout, logits)
        t4 = time.perf_counter()
        emitted, reason = self._cut(state, result.tokens)
        if reason is None:
            self.commit_kv(state, layout, result)
        t5 = time.perf_counter()
        self.observe(state, emitted, reason)
        state.drafting.feedback(StepOutcome(draft, len(result.rows), emitted, len(raw), t1 - t0, t3 - t2))
        t6 = time.perf_counter()
        step = StepResult(
            index=state.steps - 1,
            tokens=emitted,
            drafted=len(raw),
            verified=len(draft),
            accepted_nodes=len(result.rows),
            timings=StepTimings(t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5),
            finish_reason=reason,
            match_len=int(raw.match_len) if len(raw) else -1,
        )
        return step

    def draft(self, state: RequestState) -> tuple[Draft, Draft]:
        """(the drafter's draft, the part of it worth verifying), from the drafting service."""
        return state.drafting.propose(state.remaining - 1, state.eos)  # deeper nodes could not be emitted

    def layout(self, state: RequestState, draft: Draft) -> TreeLayout:
        return layout_tree(draft, state.ids[-1], state.past_len)

    @torch.inference_mode()
    def verify_forward(self, state: RequestState, layout: TreeLayout) -> torch.Tensor:
        """One forward over root + tree; returns logits ``[q, V]``."""
        ids = layout.input_ids(self.device)  # [1, q]
        pos = layout.position_ids(self.device)  # [1, q]
        mask = None if layout.q == 1 else layer_masks(layout, self._layer_kinds, self.mask_dtype, self.device)
        logits = self._forward(ids, pos, mask, state.cache)  # [q, V]
        if logits.device.type == "cuda":
            torch.cuda.synchronize(logits.device)
        return logits

    def accept(self, state: RequestState, layout: TreeLayout, logits: torch.Tensor) -> AcceptResult:
        context = None
        if state.config.sampling.repetition_penalty != 1.0:
            context = torch.tensor([state.ids], dtype=torch.long, device=logits.device)  # [1, L]
        return state.acceptor.accept(layout, logits, context)

    @torch.inference_mode()
    def commit_kv(self, state: RequestState, layout: TreeLayout, result: AcceptResult) -> None:
        """Keep the root and the accepted path in the cache; drop the other tree rows."""
        commit_path(state.cache, layout.q, [0] + result.rows)

    def observe(self, state: RequestState, emitted: list[int], reason: str | None) -> None:
        state.ids.extend(emitted)
        state.steps += 1
        state.finish_reason = reason

    # ------------------------------------------------------------------ helpers
    def _cut(self, state: RequestState, tokens: list[int]) -> tuple[list[int], str | None]:
        """The prefix of ``tokens`` to emit, and why the request ends inside it (if it does)."""
        emitted: list[int] = []
        n_gen = len(state.ids) - state.prompt_len
        stops = state.stops
        for t in tokens:
            emitted.append(t)
            n_gen += 1
            if t in state.eos:
                return emitted, "eos"
            # the window may reach into the prompt: a stop string may begin there
            if stops and stops.hit(state.ids[-stops.window :] + emitted):
                return emitted, "stop"
            if n_gen >= state.config.max_new_tokens:
                return emitted, "length"
        return emitted, None
