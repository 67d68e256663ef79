"""The drafter protocol: what the decode loop asks of anything that proposes drafts.

A drafter tracks the request's context itself: ``begin`` gives it the prompt, ``observe``
the tokens accepted at each step, so ``draft`` always continues the last accepted token.
``end`` closes the request (learning finished outputs is the drafting service's, in
``sufdec.drafters.service``). The service calls these; engines call the service.
No torch here: drafters run on plain Python ints.
"""

from __future__ import annotations

from typing import Callable, Optional, Protocol, runtime_checkable

from sufdec.suffix.draft import Draft


@runtime_checkable
class Drafter(Protocol):
    """Proposes token trees for one request at a time."""

    def begin(self, prompt_ids: list[int]) -> None:
        """Start a request whose context is ``prompt_ids``."""

    def draft(self, max_nodes: int) -> Draft:
        """A tree of at most ``max_nodes`` nodes continuing the current context.

        ``probs`` must not increase from a parent to its child, so the top-m nodes by
        probability form an ancestor-closed subtree (the engine sizes drafts that way).
        """

    def observe(self, new_ids: list[int]) -> None:
        """Extend the context with the tokens accepted this step."""

    def end(self, output_ids: list[int], finished: bool) -> None:
        """The request is over. ``output_ids`` are the generated tokens (prompt excluded);
        ``finished`` is False when it was cut short (error, cancelled stream)."""


@runtime_checkable
class PacedDrafter(Protocol):
    """A drafter that pays for every token it drafts (a model forward each) and so asks,
    token by token, whether to go on. The decode loop hands it its draft control's rule
    once per request: ``keep_drafting(depth, q)`` -> keep the token at ``depth`` (1-based)
    that the drafter gives probability ``q`` given its parent; None: the drafter's own rule."""

    def pace(self, keep_drafting: Optional[Callable[[int, float], bool]]) -> None:
        """Use ``keep_drafting`` for the requests that follow."""


@runtime_checkable
class PrefillingDrafter(Protocol):
    """A drafter with a model state of its own to bring up to the context (a KV cache).
    ``begin`` does not; ``catch_up`` feeds what the state lacks now (after ``begin``: the
    prompt, a prefill), so the next ``draft`` costs drafting only. The decode loop calls it
    right after ``begin``; a drafter that may never draft from this one (the hybrid) calls
    it when it first does, or never."""

    def catch_up(self) -> None:
        """Feed the context the drafter's state lacks, but its last token."""


@runtime_checkable
class OutcomeDrafter(Protocol):
    """A drafter that learns from each step's whole outcome (what was verified, how many
    nodes were accepted, how long drafting and the forward took), not only the tokens:
    the drafting service hands it the step's one report in place of ``observe``."""

    def feedback(self, outcome: "StepOutcome") -> None:  # noqa: F821 - drafters.control's
        """The step's outcome; ``outcome.emitted`` extends the context as ``observe`` would."""


class NullDrafter:
    """Never speculates: the decode loop then runs plain decoding (``--spec off``)."""

    def begin(self, prompt_ids: list[int]) -> None:
        pass

    def draft(self, max_nodes: int) -> Draft:
        return Draft()

    def observe(self, new_ids: list[int]) -> None:
        pass

    def end(self, output_ids: list[int], finished: bool) -> None:
        pass


class ContextDrafter:
    """Base class that keeps the request context (prompt + accepted tokens) in ``self.context``.

    Subclasses implement ``draft``; override ``end`` to learn from finished outputs.
    """

    def __init__(self) -> None:
        self.context: list[int] = []
        self.prompt_len = 0

    def begin(self, prompt_ids: list[int]) -> None:
        self.context = list(prompt_ids)
        self.prompt_len = len(self.context)

    def draft(self, max_nodes: int) -> Draft:  # pragma: no cover - abstract
        raise NotImplementedError

    def observe(self, new_ids: list[int]) -> None:
        self.context.extend(new_ids)

    def end(self, output_ids: list[int], finished: bool) -> None:
        pass
