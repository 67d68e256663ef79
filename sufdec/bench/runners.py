"""Running one named method on one prompt, and what it did (``Run``).

``vanilla`` and ``pld`` are transformers' own ``generate()`` (greedy; prompt lookup for
``pld``), timed from outside with a forward hook that counts forward calls and notes when
the first one (the prefill) ends; ``generate()`` itself is untouched. Every other method
is sufdec's ``SpeculativeGenerator`` over a ``DraftService`` whose tree the caller hands
in, and reads the per-step ``StepResult``s the decode loop yields (match length included,
so acceptance can be reported by it): the same figures streaming and ``sufdec generate``
show.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from sufdec.bench.settings import BenchSettings, method_draft


@dataclass
class Run:
    """What one method did on one prompt."""

    tokens: list[int]
    elapsed_s: float
    steps: int  # decode steps (HF methods: forward calls, prefill included)
    prefill_s: float = 0.0  # HF methods: the first forward (prompt -> first token); ours: prompt[:-1]
    drafted: int = 0
    verified: int = 0
    accepted_nodes: int = 0
    draft_s: float = 0.0
    bookkeeping_s: float = 0.0
    forward_s: float = 0.0
    observe_s: float = 0.0
    by_match_len: dict[int, list[int]] = field(default_factory=dict)  # len -> [accepted nodes, steps]
    choices: dict[str, int] = field(default_factory=dict)  # hybrid: steps drafted by suffix / eesd / none


class _CountForwards:
    """Counts forward calls of a module (a forward hook; generate() itself is untouched)."""

    def __init__(self, model: Any) -> None:
        self.n = 0
        self.first_end = 0.0
        self._h = model.register_forward_hook(self._hook)

    def _hook(self, *_a: Any) -> None:
        self.n += 1
        if self.n == 1:
            self.first_end = time.perf_counter()

    def close(self) -> None:
        self._h.remove()


def hf_generate(
    model: Any, prompt_ids: list[int], max_new_tokens: int, pld_tokens: Optional[int], pad_id: int
) -> tuple[list[int], float, int, float]:
    """(new tokens, seconds, forward calls, seconds to the end of the first forward) of
    transformers' own greedy generate()."""
    import torch

    ids = torch.tensor([prompt_ids], dtype=torch.long, device=next(model.parameters()).device)  # [1, P]
    extra = {"prompt_lookup_num_tokens": pld_tokens} if pld_tokens else {}
    counter = _CountForwards(model)
    try:
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                do_sample=False,
                max_new_tokens=max_new_tokens,
                pad_token_id=pad_id,
                **extra,
            )
        elapsed = time.perf_counter() - t0
    finally:
        counter.close()
    return out[0, len(prompt_ids) :].tolist(), elapsed, counter.n, max(counter.first_end - t0, 0.0)


class MethodRunner:
    """Runs one named method on a prompt; suffix methods draft from ``tree_of()`` (a SuffixIndex).

    ``tree_of`` is called once per request, so a store that grows between prompts (the
    online protocol) is seen as it is at each prompt's start.
    """

    def __init__(
        self,
        name: str,
        model: Any,
        tokenizer: Any,
        settings: BenchSettings,
        tree_of: Callable[[], Any],
        exit_drafter: Optional[Callable[[], Any]] = None,
    ) -> None:
        self.name, self.model, self.settings = name, model, settings
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.draft = method_draft(name, settings.draft)  # None: a transformers method
        self.generator = None
        if self.draft is None:
            return
        from sufdec.drafters.service import DraftService
        from sufdec.engine.config import GenerationConfig
        from sufdec.engine.generator import SpeculativeGenerator

        self.config = GenerationConfig(max_new_tokens=settings.max_new_tokens, do_sample=False)
        drafting = DraftService(self.draft, tree=tree_of, exit_drafter=exit_drafter)  # the bench learns itself
        self.generator = SpeculativeGenerator(model, tokenizer, drafting=drafting)

    @property
    def sized_by_cost(self) -> bool:
        """Whether this method's draft control reads the forward-cost curve."""
        return self.generator is not None and self.generator.drafting.needs_cost()

    def run(self, prompt_ids: list[int]) -> Run:
        if self.generator is None:
            s = self.settings
            pld = s.pld_tokens if self.name == "pld" else None
            toks, elapsed, forwards, prefill = hf_generate(self.model, prompt_ids, s.max_new_tokens, pld, self.pad_id)
            return Run(toks, elapsed, forwards, prefill_s=prefill, forward_s=elapsed)
        res = self.generator.generate(prompt_ids, self.config)
        run = Run(list(res.token_ids), res.elapsed_s, res.steps, prefill_s=res.prefill_s)
        run.choices = dict(res.drafting.get("choices", {}))
        for st in res.step_results:
            t = st.timings
            run.drafted += st.drafted
            run.verified += st.verified
            run.accepted_nodes += st.accepted_nodes
            run.draft_s += t.draft
            run.bookkeeping_s += t.bookkeeping
            run.forward_s += t.forward
            run.observe_s += t.observe
            if st.match_len >= 0:
                slot = run.by_match_len.setdefault(st.match_len, [0, 0])
                slot[0] += st.accepted_nodes
                slot[1] += 1
        return run

    def warm_up(self, prompt_ids: list[int]) -> None:
        """One untimed run (cost sizing measures its forward-cost curve before it, once)."""
        self.run(prompt_ids)
