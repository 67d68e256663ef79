"""The drafting service: everything an engine needs from sufdec's drafting, behind four verbs.

An engine opens one ``DraftService`` (the store's tree, how outputs are learned, the
drafting settings, the draft controls' shared state) and, per request:

    request = service.start(prompt_ids)              # a drafter from the registry, its control
    raw, draft = request.propose(max_depth, final)   # each step: the part worth verifying
    request.feedback(StepOutcome(...))               # each step, once: what was verified and kept
    request.finish(output_ids, finished)             # learns the output if it ended by itself
    service.close()                                  # the engine stops: pending outputs stored

Under it: the drafter registry (``sufdec.drafters.registry``: what each ``spec`` builds),
the draft controls and their calibrations (``sufdec.drafters.control``), and the one
learning path to the store (``learn``). The decode loop (``sufdec.engine``), the session
and the benchmark runners are adapters over it; none of them knows what a spec means.
No torch here.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Any

from sufdec.drafters import registry
from sufdec.drafters.base import FEEDBACK, PACE, PREFILL, RETARGET, Drafter, abilities, check_drafter
from sufdec.drafters.control import ControlState, DraftControl, StepOutcome
from sufdec.drafters.learning import BackgroundLearner
from sufdec.drafters.registry import DrafterKind, Sources
from sufdec.drafters.settings import DraftSettings
from sufdec.drafters.sizing import CostModel, best_chain, cut_below
from sufdec.drafters.stepcost import TOKEN_COST_PRIOR
from sufdec.suffix import SuffixIndex
from sufdec.suffix.draft import Draft

Learn = Callable[[list[int]], Any]  # stores one finished output; returns its id (None: a duplicate)


class DraftRequest:
    """One request's drafter and draft control (made by ``DraftService.start``)."""

    def __init__(
        self,
        kind: DrafterKind,
        settings: DraftSettings,
        drafter: Drafter,
        control: DraftControl,
        learn: Learn,
        open_requests: dict | None = None,
    ) -> None:
        self.kind, self.settings, self.drafter, self.control = kind, settings, drafter, control
        self.abilities = abilities(drafter)
        self._learn = learn
        self._open = open_requests if open_requests is not None else {}
        self.learned: Any = None  # the stored output's id once ``finish`` learned it
        self.done = False

    def propose(self, max_depth: int, final: Collection[int] = ()) -> tuple[Draft, Draft]:
        """(the drafter's draft, the part of it to verify this step). ``max_depth``: the
        deepest node that could still be emitted; nothing is drafted past a ``final`` token."""
        s = self.settings
        if s.max_spec_tokens <= 0 or max_depth < 1:
            return Draft(), Draft()
        limit = self.control.limit(s.max_spec_tokens)  # 0: drafting does not pay this step
        if limit <= 0:
            return Draft(), Draft()
        raw = self.drafter.draft(limit)
        if len(raw) == 0:
            return raw, raw
        draft = cut_below(raw, final)
        if self.kind.chain:
            draft = best_chain(draft)
        return raw, self.control.size(draft, limit, max_depth)

    def feedback(self, outcome: StepOutcome) -> None:
        """The step's one report: the drafter sees the emitted tokens (a drafter that learns
        from outcomes, the whole report), the control what was verified, accepted and how
        long drafting and the forward took."""
        if FEEDBACK in self.abilities:
            self.drafter.feedback(outcome)  # type: ignore[attr-defined]
        elif outcome.emitted:
            self.drafter.observe(list(outcome.emitted))
        if self.kind.drafts:
            self.control.feedback(outcome)

    def finish(self, output_ids: Sequence[int], finished: bool) -> Any:
        """The request is over (``finished``: it ended by itself, not by an error or a
        cancelled stream); its output is learned if the service learns. Returns the stored
        output's id, or None."""
        if self.done:
            return self.learned
        self.done = True
        self._open.pop(id(self), None)
        self.control.end()
        self.drafter.end(list(output_ids), finished)
        if finished and output_ids:
            self.learned = self._learn(list(output_ids))
        return self.learned

    def use_tree(self, tree: SuffixIndex | None) -> None:
        """Draft from ``tree`` from now on (the store reloaded its tree while this request
        ran), if the drafter can (it declares ``use_tree``)."""
        if RETARGET in self.abilities:
            self.drafter.use_tree(tree)  # type: ignore[attr-defined]

    def summary(self) -> dict:
        """What the request did, for reports: the source of each step's draft where the
        drafter chose between several (``choices``), and whether its output was learned."""
        out: dict[str, Any] = {"spec": self.kind.name, "learned": self.learned is not None, "learned_id": self.learned}
        choices = getattr(self.drafter, "choices", None)
        if isinstance(choices, dict):
            out["choices"] = dict(choices)
        return out


class DraftService:
    """One engine's drafting state: settings, sources, learned controls and learning.

    ``tree``: the store's newest suffix tree, asked at each request's start (None: drafts
    come from the request's own tree only). ``exit_drafter``: a factory of early-exit
    drafters (kinds that need an exit layer). ``learn``: stores a finished output (None: the
    service does not learn). ``cost``: the verification cost curve, or a callable measuring
    it on first use (None: the engine that opens it attaches its own, ``use_cost``).
    ``drafter``: one custom drafter for every request, or ``drafter_factory`` one per
    request, instead of the registry's build (the kind still decides control and
    verification); ``plain=True``: never draft. ``price``: for an engine whose steps serve
    many requests, what verifying one drafted token costs in tokens of output, fixed (a
    number) or ``"measured"`` from the steps it reports (``timed_step``; ``prior`` until
    they can tell); ``cost`` sizing then keeps the nodes whose calibrated probability pays
    it. ``learn_in_background``: outputs are stored by a background thread (``close`` waits
    for it), for an engine whose steps must not wait for the disk; a request then cannot say
    the id its output was stored under.
    """

    def __init__(
        self,
        settings: DraftSettings | None = None,
        *,
        tree: Callable[[], SuffixIndex | None] | None = None,
        exit_drafter: Callable[[], Drafter] | None = None,
        learn: Learn | None = None,
        cost: CostModel | Callable[[], CostModel] | None = None,
        controls: ControlState | None = None,
        drafter: Drafter | None = None,
        drafter_factory: Callable[[], Drafter] | None = None,
        plain: bool = False,
        price: float | str | None = None,
        prior: float = TOKEN_COST_PRIOR,
        learn_in_background: bool = False,
        log: Any = None,
    ) -> None:
        if drafter is not None and drafter_factory is not None:
            raise ValueError("give either drafter or drafter_factory, not both")
        if drafter is not None:
            check_drafter(drafter)
        self.settings = settings if settings is not None else DraftSettings()
        self.controls = controls if controls is not None else ControlState(cost)
        self._cost_attached = controls is not None or cost is not None
        if price is not None:
            self._price(price, prior)
        self.sources = Sources(tree=tree, exit_drafter=exit_drafter, controls=self.controls)
        self.learn = learn
        self.learner = BackgroundLearner(learn, log) if learn is not None and learn_in_background else None
        self.store: Any = None  # the store it drafts from, where it opened one (serving)
        self._closers: list[Callable[[], Any]] = []
        self._open: dict[int, DraftRequest] = {}  # requests started and not finished, by id()
        self._tree_seen: Any = None
        self._drafter, self._factory, self._plain = drafter, drafter_factory, plain
        self._kind(self.settings)  # an unknown spec, or an exit layer missing, is refused at open

    # ------------------------------------------------------------------ set-up by the engine
    def use_cost(self, measure: Callable[[], CostModel]) -> None:
        """The engine's own cost curve (measured on first use, then refit from the steps'
        verification times as they come), unless one was given at open."""
        if not self._cost_attached:
            self.controls.with_cost(measure, live=True)
            self._cost_attached = True

    def _price(self, price: float | str, prior: float) -> None:
        steps = self.controls.steps
        steps.prior = prior
        if price == "measured":
            self.controls.price = lambda: steps.token_cost
        elif isinstance(price, (int, float)) and not isinstance(price, bool) and 0 <= price <= 1:
            self.controls.price = lambda: float(price)
        else:
            raise ValueError(f'price must be "measured" or a number between 0 and 1, not {price!r}')
        self._cost_attached = True  # a step serving many requests has no one-request curve

    def token_price(self) -> float | None:
        """What verifying one drafted token costs now, in tokens of output (None: no price set)."""
        return self.controls.price() if self.controls.price is not None else None

    def timed_step(self, requests: int, drafted: int, seconds: float, output_tokens: int) -> None:
        """An engine whose steps serve many requests reports each decode step once: the
        requests in it, the drafted tokens it verified, its seconds and the tokens it output
        (what prices a verified token, ``ControlState.price``)."""
        self.controls.steps.observe(requests, drafted, seconds, output_tokens)

    def speculates(self, settings: DraftSettings | None = None) -> bool:
        """Whether requests with these settings draft at all."""
        s = settings if settings is not None else self.settings
        return not self._plain and s.max_spec_tokens > 0 and registry.kind_of(s.spec).drafts

    def needs_cost(self, settings: DraftSettings | None = None) -> bool:
        """Whether such requests read the cost curve (so an engine measures it before timing)."""
        s = settings if settings is not None else self.settings
        return self.speculates(s) and s.sizing != "fixed"

    # ------------------------------------------------------------------ the request lifecycle
    def start(self, prompt_ids: Sequence[int], settings: DraftSettings | None = None) -> DraftRequest:
        """A new request continuing ``prompt_ids`` (``settings``: this request's, else the service's)."""
        s = settings if settings is not None else self.settings
        kind = self._kind(s)
        if kind.name == "off":
            drafter = kind.build(self.sources, s)
        elif self._drafter is not None:
            drafter = self._drafter
        elif self._factory is not None:
            drafter = self._factory()
        else:
            drafter = kind.build(self.sources, s)
        check_drafter(drafter)
        control = self._control(kind, s)
        declared = abilities(drafter)
        if PACE in declared:
            drafter.pace(control.keep_drafting)  # type: ignore[attr-defined]
        drafter.begin(list(prompt_ids))
        if PREFILL in declared:
            drafter.prefill()  # type: ignore[attr-defined] - its own prefill, before the first step like the target's
        request = DraftRequest(kind, s, drafter, control, self.learn_output, self._open)
        self._open[id(request)] = request
        return request

    def follow_tree(self) -> None:
        """Running requests draft from the store's newest tree from now on, if it was
        reloaded since the last call (a serving engine calls this before each step)."""
        tree = self.sources.global_tree()
        if tree is not self._tree_seen:
            self._tree_seen = tree
            for request in list(self._open.values()):
                request.use_tree(tree)

    def learn_output(self, output_ids: Sequence[int]) -> Any:
        """The one learning path: store an output that ended by itself (``finish`` calls
        it; an engine calls it for a request it never drafted for). Returns the stored id,
        None for a duplicate, an output queued in the background or a service that does
        not learn."""
        if self.learn is None or not output_ids:
            return None
        if self.learner is not None:
            self.learner.submit(list(output_ids))
            return None
        return self.learn(list(output_ids))

    def on_close(self, closer: Callable[[], Any]) -> None:
        """Call ``closer`` when the service closes (after queued outputs are stored)."""
        self._closers.append(closer)

    def close(self, timeout_s: float = 30.0) -> None:
        """Store what is queued (background learning), stop its thread, then whatever the
        service was opened with (``on_close``: a follower, the store)."""
        if self.learner is not None:
            self.learner.close(timeout_s)
            self.learner = None
        closers, self._closers = self._closers, []
        for closer in closers:
            closer()

    def _kind(self, settings: DraftSettings) -> DrafterKind:
        """The registry's entry for these settings (``off`` where nothing is drafted); a kind
        that needs an exit layer is refused when the service has none and no drafter of its own."""
        kind = registry.kind_of(settings.spec)
        if not self.speculates(settings):
            return registry.kind_of("off")
        own = self._drafter is not None or self._factory is not None
        if kind.exit_layer == "needs" and self.sources.exit_drafter is None and not own:
            raise ValueError(f"spec {kind.name!r} needs an exit layer (train one with `sufdec train-exit`)")
        return kind

    def _control(self, kind: DrafterKind, settings: DraftSettings) -> DraftControl:
        if kind.control is None:  # the drafter sizes its drafts itself
            return self.controls.for_request("fixed", kind.name)
        max_len = kind.max_len(settings) if kind.max_len is not None else None
        return self.controls.for_request(settings.sizing, kind.control, max_len)


__all__ = ["DraftService", "DraftRequest", "StepOutcome", "Learn"]
