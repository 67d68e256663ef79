"""The early-exit drafter (``--spec eesd``): chains from the target's own first N layers.

Each step it brings its own cache up to the request's context (the tokens accepted since
the last step, in one forward through the N + 1 layers of the draft model; the prompt in
``prefill``, which the drafting service calls after ``begin`` and the hybrid only once it first
drafts from early exit), then drafts
greedily, one token per forward, while the chain's probability (the product of the draft
head's top probabilities) stays above ``min_prob``, up to ``max_len`` tokens; or, when the
decode loop paces it (``pace``: a Thompson-sampling draft control), while the control's
``keep_drafting`` says the next token pays. Drafted
tokens that the target then accepts keep their cache rows; the rest are cropped.

The KV cache is the draft model's own, not a view of the target's: the target's cache for
its first N layers holds the same keys and values for accepted tokens, but it is one
``DynamicCache`` sized for all layers and rolled back by the engine each step, and sharing
it would tie the drafter to the engine's internals. The price is one (N + 1)-layer forward
over each step's accepted tokens (a few tokens, batched with the first draft position).
Sliding-window layers record every drafted key until the rollback in ``observe``; on a
transformers release that cannot run two forwards in a row on such a cache (5.17),
chains on sliding-window models are cut to 2 tokens (``consecutive_forwards_ok``).

Drafts are deterministic functions of the context, so the engine's verification rule
(draw from the target's distribution, descend while the draw is a child) keeps sampling
exact; greedy verification keeps greedy output identical. Chains by default; with
``exit_branch`` > 0 a sibling leaf where the top-2 are close (``EarlyExitDrafter``).
"""

from __future__ import annotations

import weakref
from typing import Any, Callable, Optional

import torch

from sufdec.drafters.base import PACE, PREFILL, ContextDrafter
from sufdec.drafters.settings import DraftSettings
from sufdec.engine.kv import cache_kwargs, crop_last, has_sliding_layers, new_cache, settle
from sufdec.suffix.draft import Draft

_ROLLBACK_OK: "weakref.WeakKeyDictionary[torch.nn.Module, bool]" = weakref.WeakKeyDictionary()
# per draft model and draft vocabulary: its ids and the head's rows for them, made once, not
# per request (19 MB for the default model)
_HEADS: "weakref.WeakKeyDictionary[torch.nn.Module, dict[tuple[int, ...], tuple[torch.Tensor, torch.Tensor]]]" = (
    weakref.WeakKeyDictionary()
)


@torch.inference_mode()
def consecutive_forwards_ok(model: torch.nn.Module) -> bool:
    """Whether the installed transformers runs two forwards in a row on a cache whose
    sliding-window layers record their past for a rollback (5.17 does not: it hands the
    whole recorded past to the second forward with a window-sized mask). Probed once per
    model on a throwaway cache; always True without sliding layers."""
    if model in _ROLLBACK_OK:
        return _ROLLBACK_OK[model]
    cache = new_cache(model)
    ok = True
    if has_sliding_layers(cache):
        window = getattr(model.config.get_text_config(decoder=True), "sliding_window", None) or 1
        dev = model.get_input_embeddings().weight.device
        try:
            for n in (window + 1, 1):
                start = cache.get_seq_length()
                model.model(
                    input_ids=torch.zeros((1, n), dtype=torch.long, device=dev),
                    position_ids=torch.arange(start, start + n, device=dev)[None],
                    use_cache=True,
                    **cache_kwargs(model.model, cache),
                )
        except (RuntimeError, ValueError, IndexError):
            ok = False
    _ROLLBACK_OK[model] = ok
    return ok


_DEFAULTS = DraftSettings()  # the exit knobs' defaults (exit_max_len, exit_min_prob, exit_branch)


class EarlyExitDrafter(ContextDrafter):
    """Drafts chains with ``draft_model`` (see ``exit_model.build_draft_model``) whose head is
    restricted to ``vocab`` (token ids, sorted; None: the whole vocabulary); with ``branch``
    > 0, trees: at a position where the runner-up's probability is at least ``branch`` times
    the top's, the runner-up is added as a sibling leaf (one more verified token, no more
    draft forwards: the chain goes on below the top token only)."""

    abilities = frozenset({PACE, PREFILL})

    def __init__(
        self,
        draft_model: torch.nn.Module,
        vocab: list[int] | None = None,
        *,
        max_len: int = _DEFAULTS.exit_max_len,
        min_prob: float = _DEFAULTS.exit_min_prob,
        branch: float = _DEFAULTS.exit_branch,
    ) -> None:
        super().__init__()
        self.model = draft_model
        # where consecutive forwards cannot roll back sliding layers, a chain is at most 2
        # tokens: one forward after the settled context, then the next token is only predicted
        self.chains = consecutive_forwards_ok(draft_model)
        self.max_len = max_len if self.chains else min(max_len, 2)
        self.min_prob = min_prob
        self.branch = branch  # > 0: a sibling where the runner-up has this share of the top's probability
        head = draft_model.get_output_embeddings().weight.detach()
        self.device = draft_model.get_input_embeddings().weight.device
        if vocab is not None and len(vocab) < head.shape[0]:
            heads, key = _HEADS.setdefault(draft_model, {}), tuple(vocab)
            if key not in heads:
                ids = torch.tensor(vocab, dtype=torch.long, device=head.device)
                heads[key] = (ids, head[ids])
            self.vocab: torch.Tensor | None
            self.vocab, self.head = heads[key]  # [V'], [V', H]
        else:
            self.vocab, self.head = None, head  # [V, H]
        self.keep_drafting: Optional[Callable[[int, float], bool]] = None
        self.cache: Any = None
        self.fed = 0  # context tokens whose keys and values are in the cache
        self.drafted: list[int] = []  # the last chain, fed up to its last token

    def pace(self, keep_drafting: Optional[Callable[[int, float], bool]]) -> None:
        """Stop chains by the draft control's rule (None: by ``min_prob``); see the Drafter protocol's pace."""
        self.keep_drafting = keep_drafting

    def begin(self, prompt_ids: list[int]) -> None:
        super().begin(prompt_ids)
        self.cache = new_cache(self.model)
        self.fed = 0
        self.drafted = []

    def prefill(self) -> None:
        """Feed the context but its last token (after ``begin``: the draft model's prefill), so
        that the next draft step costs what drafting costs (a draft control measures it per
        token). Not where two forwards in a row cannot run (the next draft feeds it all)."""
        if len(self.context) - 1 > self.fed and self.chains:
            self._forward(self.context[self.fed : -1])
            settle(self.cache)
            self.fed = len(self.context) - 1

    @torch.inference_mode()
    def _forward(self, ids: list[int]) -> torch.Tensor:
        """Feed ``ids`` after the cached tokens; the draft head's probabilities at the last one."""
        start = self.cache.get_seq_length()
        x = torch.tensor([ids], dtype=torch.long, device=self.device)  # [1, n]
        pos = torch.arange(start, start + len(ids), device=self.device)[None]  # [1, n]
        out = self.model.model(
            input_ids=x, position_ids=pos, use_cache=True, **cache_kwargs(self.model.model, self.cache)
        )
        h = out.last_hidden_state[0, -1]  # [H]
        return torch.softmax((self.head @ h.to(self.head.dtype)).float(), dim=-1)  # [V']

    def _token(self, i: int) -> int:
        return int(self.vocab[i]) if self.vocab is not None else i

    def draft(self, max_nodes: int) -> Draft:
        limit = min(max_nodes, self.max_len)
        if limit <= 0:
            return Draft()
        probs = self._forward(self.context[self.fed :])
        settle(self.cache)  # nothing drafted is in the cache yet: no rollback needed past here
        self.fed = len(self.context)
        chain: list[int] = []  # the greedy chain's tokens
        tokens, parents, node_probs = [], [], []  # the draft: the chain, and siblings where the top-2 are close
        parent, p_chain = -1, 1.0
        while True:
            top_p, top_i = probs.topk(2) if self.branch > 0 and probs.numel() > 1 else probs.topk(1)
            q = float(top_p[0])
            if self.keep_drafting is not None:
                if not self.keep_drafting(len(chain) + 1, q):
                    break
            elif p_chain * q < self.min_prob and chain:
                break
            if len(top_p) > 1 and float(top_p[1]) >= self.branch * q and len(tokens) + 2 <= max_nodes:
                # a sibling leaf: verified in the same forward, never drafted below
                tokens.append(self._token(int(top_i[1])))
                parents.append(parent)
                node_probs.append(p_chain * float(top_p[1]))
            p_chain *= q
            chain.append(self._token(int(top_i[0])))
            tokens.append(chain[-1])
            parents.append(parent)
            node_probs.append(p_chain)
            parent = len(tokens) - 1
            if len(chain) >= limit or len(tokens) >= max_nodes:
                break
            probs = self._forward([chain[-1]])
        self.drafted = chain[:-1]  # fed into the cache; the last one was only predicted
        return Draft(tokens, parents, node_probs, float(sum(node_probs)), 0)

    def observe(self, new_ids: list[int]) -> None:
        """Keep the cache rows of drafted tokens the target accepted, crop the rest."""
        keep = 0  # at least the last new token is fed again: the next draft starts from its output
        while keep < len(self.drafted) and keep < len(new_ids) - 1 and self.drafted[keep] == new_ids[keep]:
            keep += 1
        if self.cache.get_seq_length() > 0:  # nothing to roll back before the first forward
            crop_last(self.cache, len(self.drafted) - keep)
            settle(self.cache)  # sliding layers recorded every drafted key for this rollback
        self.fed += keep
        self.drafted = []
        super().observe(new_ids)

    def end(self, output_ids: list[int], finished: bool) -> None:
        self.cache = None
        self.drafted = []
