"""The speculative decode loop: draft -> layout -> verify_forward -> accept -> commit_kv -> observe.

Invariant between steps: the KV cache holds every token of the request but the last one
(the root), which the next step forwards first, followed by the draft tree. Each step
yields a ``StepResult``; streaming, statistics and benchmarks all read those.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Union

import torch

from sufdec.drafters.base import Drafter, NullDrafter
from sufdec.drafters.budget import AcceptanceCalibration, CostModel, best_chain, cut_below, size_draft
from sufdec.engine.accept import Acceptor, AcceptResult, SamplingParams
from sufdec.engine.kv import commit_path, new_cache, settle
from sufdec.engine.stopping import StopStrings, eos_ids_of
from sufdec.engine.tree import TreeLayout, layout_tree
from sufdec.suffix.draft import Draft

SPEC_MODES = ("tree", "chain", "off")
SIZINGS = ("cost", "fixed")


@dataclass(frozen=True)
class GenerationConfig:
    """How to generate one request. ``temperature == 0`` is greedy decoding.

    spec: "tree" verifies draft trees, "chain" only each draft's most probable path,
    "off" is plain decoding through the same loop. draft_sizing: "cost" cuts each draft
    to the size that maximises expected tokens per unit of forward cost, "fixed" keeps up
    to ``max_spec_tokens`` nodes. ``eos_token_ids=None`` uses the model's own.
    """

    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    repetition_penalty: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    eos_token_ids: tuple[int, ...] | None = None
    spec: str = "tree"
    max_spec_tokens: int = 32
    draft_sizing: str = "cost"

    def __post_init__(self) -> None:
        if isinstance(self.stop, str):
            object.__setattr__(self, "stop", (self.stop,))
        else:
            object.__setattr__(self, "stop", tuple(self.stop))
        if self.eos_token_ids is not None:
            object.__setattr__(self, "eos_token_ids", tuple(int(e) for e in self.eos_token_ids))
        if self.max_new_tokens < 1:
            raise ValueError("max_new_tokens must be >= 1")
        if self.temperature < 0 or not 0 < self.top_p <= 1 or self.top_k < 0:
            raise ValueError("need temperature >= 0, 0 < top_p <= 1, top_k >= 0")
        if self.repetition_penalty <= 0:
            raise ValueError("repetition_penalty must be > 0")
        if self.spec not in SPEC_MODES:
            raise ValueError(f"spec must be one of {SPEC_MODES}, not {self.spec!r}")
        if self.draft_sizing not in SIZINGS:
            raise ValueError(f"draft_sizing must be one of {SIZINGS}, not {self.draft_sizing!r}")
        if self.max_spec_tokens < 0:
            raise ValueError("max_spec_tokens must be >= 0")

    @property
    def sampling(self) -> SamplingParams:
        return SamplingParams(self.temperature, self.top_k, self.top_p, self.repetition_penalty)


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
    index: int                  # step number, 0-based
    tokens: list[int]           # tokens emitted this step (accepted path + bonus, after stops)
    drafted: int                # nodes the drafter proposed
    verified: int               # nodes verified (after sizing)
    accepted: int               # draft nodes accepted
    timings: StepTimings
    finish_reason: str | None = None  # "eos" | "stop" | "length" when the request ended here

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None


@dataclass
class GenerationResult:
    text: str
    token_ids: list[int]        # generated tokens (prompt excluded)
    new_tokens: int
    steps: int
    accepted_per_step: list[int]  # tokens emitted per step
    tokens_per_s: float
    elapsed_s: float              # prefill included
    prefill_s: float
    finish_reason: str | None
    step_results: list[StepResult] = field(default_factory=list)

    @property
    def mean_accepted(self) -> float:
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
    config: GenerationConfig
    acceptor: Acceptor
    drafter: Drafter
    eos: frozenset[int]
    stops: StopStrings
    steps: int = 0
    finish_reason: str | None = None
    # drafts waiting for their true continuation: (len(ids) when drafted, draft, its depth)
    pending: list[tuple[int, Draft, int]] = field(default_factory=list)

    @property
    def past_len(self) -> int:
        return len(self.ids) - 1

    @property
    def generated(self) -> list[int]:
        return self.ids[self.prompt_len :]

    @property
    def remaining(self) -> int:
        return self.config.max_new_tokens - (len(self.ids) - self.prompt_len)


DrafterSource = Union[Drafter, Callable[[], Drafter], None]


class SpeculativeGenerator:
    """Lossless speculative decoding of a Hugging Face causal LM with draft trees.

    ``drafter`` is a Drafter (reused: ``begin`` resets it per request), a zero-argument
    factory returning a fresh Drafter per request, or None (plain decoding).
    ``cost_model``: a CostModel, or "auto" to measure one on first use (cached per model,
    device and dtype); only used with ``draft_sizing="cost"``. ``acceptance``: an
    AcceptanceCalibration (or True for a fresh one, False for none) that cost sizing reads
    the drafts' probabilities through; it learns from every request this generator runs.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        drafter: DrafterSource = None,
        *,
        cost_model: CostModel | str | None = "auto",
        acceptance: AcceptanceCalibration | bool = True,
    ):
        attn = getattr(model.config, "_attn_implementation", None) or "eager"
        if attn.startswith("flash") or attn not in ("sdpa", "eager"):
            raise ValueError(
                f"attention implementation {attn!r} cannot take tree masks: load the model "
                "with attn_implementation='sdpa' (or 'eager')"
            )
        self.model = model
        self.tokenizer = tokenizer
        self.drafter_source = drafter
        self.cost_model_setting = cost_model
        self._cost_model: CostModel | None = cost_model if isinstance(cost_model, CostModel) else None
        if isinstance(acceptance, AcceptanceCalibration):
            self.acceptance: AcceptanceCalibration | None = acceptance
        else:
            self.acceptance = AcceptanceCalibration() if acceptance else None
        self.device = next(model.parameters()).device
        self.mask_dtype = torch.bool if attn == "sdpa" else model.dtype
        self._layer_kinds = _mask_kinds(model)

    # ------------------------------------------------------------------ public API
    def generate(
        self,
        prompt: str | Sequence[int],
        config: GenerationConfig | None = None,
        streamer: Any = None,
    ) -> GenerationResult:
        """Generate one completion; ``streamer`` gets ``put``/``end`` like in ``generate()``."""
        config = config or GenerationConfig()
        if config.spec != "off" and config.draft_sizing == "cost":
            self.cost_model()  # a first-use calibration is not part of the request's time
        t0 = time.perf_counter()
        state = self._start(self._prompt_ids(prompt), config)
        prefill_s = time.perf_counter() - t0
        steps = list(self._run(state, streamer))
        elapsed = time.perf_counter() - t0
        gen = state.generated
        return GenerationResult(
            text=self.tokenizer.decode(gen, skip_special_tokens=True) if self.tokenizer is not None else "",
            token_ids=list(gen),
            new_tokens=len(gen),
            steps=len(steps),
            accepted_per_step=[len(s.tokens) for s in steps],
            tokens_per_s=len(gen) / elapsed if elapsed > 0 else 0.0,
            elapsed_s=elapsed,
            prefill_s=prefill_s,
            finish_reason=state.finish_reason,
            step_results=steps,
        )

    def stream(
        self,
        prompt: str | Sequence[int],
        config: GenerationConfig | None = None,
        streamer: Any = None,
    ) -> Iterator[StepResult]:
        """Yield one StepResult per decode step until EOS, a stop string or the length cap."""
        state = self._start(self._prompt_ids(prompt), config or GenerationConfig())
        yield from self._run(state, streamer)

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
            state.drafter.end(list(state.generated), finished)
            if streamer is not None:
                streamer.end()

    def cost_model(self) -> CostModel:
        """The forward-cost curve used for draft sizing (measured on first call if "auto")."""
        if self._cost_model is None:
            if self.cost_model_setting == "auto":
                from sufdec.engine.calibrate import cost_model_for

                self._cost_model = cost_model_for(self.model)
            else:
                self._cost_model = CostModel.flat()
        return self._cost_model

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

    def _new_drafter(self, config: GenerationConfig) -> Drafter:
        src = self.drafter_source
        if config.spec == "off" or src is None:
            return NullDrafter()
        if hasattr(src, "draft"):
            return src  # type: ignore[return-value]
        return src()  # a factory

    def _start(self, prompt_ids: list[int], config: GenerationConfig) -> RequestState:
        gen = None
        if config.sampling.do_sample:
            gen = torch.Generator(device=self.device)
            gen.manual_seed(config.seed if config.seed is not None else int(torch.seed()))
        eos = config.eos_token_ids if config.eos_token_ids is not None else eos_ids_of(self.model, self.tokenizer)
        drafter = self._new_drafter(config)
        if config.spec != "off" and config.draft_sizing == "cost":
            self.cost_model()  # calibrate before the clock of the first step starts
        state = RequestState(
            ids=list(prompt_ids),
            prompt_len=len(prompt_ids),
            cache=new_cache(self.model),
            config=config,
            acceptor=Acceptor(config.sampling, gen),
            drafter=drafter,
            eos=frozenset(eos),
            stops=StopStrings(self.tokenizer, config.stop),
        )
        drafter.begin(list(prompt_ids))
        self._prefill(state)
        return state

    @torch.inference_mode()
    def _prefill(self, state: RequestState) -> None:
        """Forward the prompt but its last token (the first step's root) in one pass."""
        if len(state.ids) > 1:
            ids = torch.tensor([state.ids[:-1]], dtype=torch.long, device=self.device)
            self.model(input_ids=ids, past_key_values=state.cache, use_cache=True, logits_to_keep=1)
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
        t6 = time.perf_counter()
        step = StepResult(
            index=state.steps - 1,
            tokens=emitted,
            drafted=len(raw),
            verified=len(draft),
            accepted=len(result.rows),
            timings=StepTimings(t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5),
            finish_reason=reason,
        )
        return step

    def draft(self, state: RequestState) -> tuple[Draft, Draft]:
        """Ask the drafter, then cut the draft to what is worth verifying."""
        cfg = state.config
        max_depth = state.remaining - 1  # deeper nodes could not be emitted anyway
        if cfg.spec == "off" or cfg.max_spec_tokens == 0 or max_depth < 1:
            return Draft(), Draft()
        raw = state.drafter.draft(cfg.max_spec_tokens)
        if len(raw) == 0:
            return raw, raw
        draft = cut_below(raw, state.eos)
        draft = best_chain(draft) if cfg.spec == "chain" else draft
        if cfg.draft_sizing != "cost":
            return raw, size_draft(draft, None, cfg.max_spec_tokens, max_depth)
        if self.acceptance is not None:
            state.pending.append((len(state.ids), draft, max(draft.depths(), default=0)))
            draft = self.acceptance.apply(draft)
        return raw, size_draft(draft, self.cost_model(), cfg.max_spec_tokens, max_depth)

    def layout(self, state: RequestState, draft: Draft) -> TreeLayout:
        return layout_tree(draft, state.ids[-1], state.past_len)

    @torch.inference_mode()
    def verify_forward(self, state: RequestState, layout: TreeLayout) -> torch.Tensor:
        """One forward over root + tree; returns logits ``[q, V]``."""
        ids = layout.input_ids(self.device)          # [1, q]
        pos = layout.position_ids(self.device)       # [1, q]
        mask = None if layout.q == 1 else self._attention_mask(layout)
        out = self.model(
            input_ids=ids, attention_mask=mask, position_ids=pos,
            past_key_values=state.cache, use_cache=True,
        )
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return out.logits[0]                         # [q, V]

    def accept(self, state: RequestState, layout: TreeLayout, logits: torch.Tensor) -> AcceptResult:
        context = None
        if state.config.repetition_penalty != 1.0:
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
        if emitted:
            state.drafter.observe(emitted)
        if state.pending and self.acceptance is not None:
            self._label_drafts(state, final=reason is not None)

    # ------------------------------------------------------------------ helpers
    def _label_drafts(self, state: RequestState, final: bool) -> None:
        """Teach the calibration each draft whose continuation is now known (all at the end)."""
        known = len(state.ids)
        keep = []
        for pos, draft, depth in state.pending:
            if final or pos + depth <= known:
                self.acceptance.record(draft, state.ids[pos:pos + depth])
            else:
                keep.append((pos, draft, depth))
        state.pending = keep

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
            if stops and stops.hit(state.ids[max(state.prompt_len, len(state.ids) - stops.window) :] + emitted):
                return emitted, "stop"
            if n_gen >= state.config.max_new_tokens:
                return emitted, "length"
        return emitted, None

    def _attention_mask(self, layout: TreeLayout) -> torch.Tensor | dict[str, torch.Tensor]:
        kinds = self._layer_kinds
        masks = {
            name: layout.attention_mask(
                kv_offset=0 if window is None else max(layout.past_len - window + 1, 0),
                sliding_window=window,
                dtype=self.mask_dtype,
                device=self.device,
            )
            for name, window in kinds.items()
        }
        if len(masks) == 1:
            return next(iter(masks.values()))
        return masks


def _mask_kinds(model: torch.nn.Module) -> dict[str, int | None]:
    """Layer type -> sliding window (None for full attention), as the model's cache sees it."""
    cache = new_cache(model)
    text_cfg = model.config.get_text_config(decoder=True)
    names = getattr(text_cfg, "layer_types", None)
    kinds: dict[str, int | None] = {}
    layers = list(cache.layers)
    if not layers:  # lazily built cache: every layer is full attention
        return {"full_attention": None}
    for i, layer in enumerate(layers):
        window = getattr(layer, "sliding_window", None) if getattr(layer, "is_sliding", False) else None
        name = names[i] if names is not None and i < len(names) else (
            "sliding_attention" if window is not None else "full_attention")
        if name == "chunked_attention":
            raise ValueError("chunked-attention models are not supported by tree verification")
        if name in ("dummy", "moe", "mlp"):
            continue
        if kinds.get(name, window) != window:
            raise ValueError(f"layers of type {name!r} disagree on their sliding window")
        kinds[name] = window
    if len(kinds) > 1 and names is None:
        raise ValueError("mixed sliding/full layers without config.layer_types are not supported")
    return kinds or {"full_attention": None}
