"""The drafter protocol: what the decode loop asks of anything that proposes drafts.

A drafter tracks the request's context itself: ``begin`` gives it the prompt, ``observe``
the tokens accepted at each step, so ``draft`` always continues the last accepted token.
``end`` closes the request (learning finished outputs is the drafting service's, in
``sufdec.drafters.service``). The service calls these; engines call the service.
No torch here: drafters run on plain Python ints.
"""

from __future__ import annotations

from typing import Protocol

from sufdec.suffix.draft import Draft

# What a drafter can do beyond the four calls, declared in its ``abilities`` attribute (a
# frozenset of these names): the drafting service reads the declaration, never the
# drafter's type, so a wrapper declares exactly what it forwards.
PACE = "pace"  # pace(keep_drafting): it pays for every token it drafts and asks before each
PREFILL = "prefill"  # prefill(): a model state of its own to bring up to the context
FEEDBACK = "feedback"  # feedback(outcome): the step's whole report, in place of observe
RETARGET = "use_tree"  # use_tree(tree): it moves to a reloaded store tree mid-request
ABILITIES = (PACE, PREFILL, FEEDBACK, RETARGET)
CALLS = ("begin", "draft", "observe", "end")


def abilities(drafter: object) -> frozenset[str]:
    """What ``drafter`` declares it can do (its ``abilities``; none declared: none)."""
    return frozenset(getattr(drafter, "abilities", ()))


def check_drafter(drafter: object) -> None:
    """TypeError unless ``drafter`` has the four calls and a method for each ability it declares."""
    declared = abilities(drafter)
    unknown = sorted(declared - set(ABILITIES))
    missing = [m for m in CALLS + tuple(sorted(declared & set(ABILITIES))) if not callable(getattr(drafter, m, None))]
    if unknown or missing:
        raise TypeError(
            f"{type(drafter).__name__} is not a drafter: "
            + (f"it lacks {', '.join(missing)}" if missing else "")
            + ("; " if missing and unknown else "")
            + (f"unknown abilities {', '.join(unknown)} (known: {', '.join(ABILITIES)})" if unknown else "")
        )


class Drafter(Protocol):
    """Proposes token trees for one request at a time.

    Optional abilities, each a method named after it and declared in ``abilities``:
    ``pace(keep_drafting)``: a drafter that pays for every token it drafts (a model forward
    each) is handed its draft control's rule once per request, ``keep_drafting(depth, q)``
    -> keep the token at ``depth`` (1-based) that it gives probability ``q`` given its
    parent (None: its own rule). ``prefill()``: a drafter with a model state of its own (a
    KV cache) feeds what that state lacks (after ``begin``: the prompt), so the next
    ``draft`` costs drafting only; the service calls it right after ``begin``, a chooser
    (the hybrid) when it first drafts from that side, or never. ``feedback(outcome)``: it
    learns from each step's whole report (what was verified, how many nodes were accepted,
    how long drafting and the forward took), handed to it in place of ``observe``.
    ``use_tree(tree)``: it drafts from ``tree`` from now on (the store reloaded its tree).
    """

    abilities: frozenset[str]

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


class NullDrafter:
    """Never speculates: the decode loop then runs plain decoding (``--spec off``)."""

    abilities: frozenset[str] = frozenset()

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

    abilities: frozenset[str] = frozenset()

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
