"""The drafter protocol: what the decode loop asks of anything that proposes drafts.

A drafter tracks the request's context itself: ``begin`` gives it the prompt, ``observe``
the tokens accepted at each step, so ``draft`` always continues the last accepted token.
``end`` is where online learning hooks in (append the finished output to a store).
No torch here: drafters run on plain Python ints.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

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
