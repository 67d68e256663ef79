"""The drafter registry: what each drafting kind (``DraftSettings.spec``) is, in one place.

An entry says how to build a fresh drafter for one request from what the drafting service
opened (``Sources``: the store's tree, an early-exit drafter factory, the shared draft
controls), whether it reads the store or an exit layer, how its drafts are verified (whole
trees or their best path) and which draft control sizes them. Nothing else in sufdec
compares spec strings: the CLI's choices and help, the session's decision to open a store
or load an exit layer, and the decode loop's handling of a draft all read an entry.

A new drafter is one module and one ``register(DrafterKind(...))`` call
(``tests/drafters/test_registry.py`` adds a toy one and runs it through the decode loop).
No torch here: the early-exit drafter is built by a factory the application hands in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sufdec.drafters.base import Drafter, NullDrafter
from sufdec.drafters.hybrid import HybridDrafter, sides
from sufdec.drafters.settings import DraftSettings
from sufdec.drafters.suffix import SuffixDrafter
from sufdec.suffix import SuffixIndex


@dataclass(frozen=True)
class Sources:
    """What a drafting service opened for its drafters (None: not available here)."""

    tree: Callable[[], SuffixIndex | None] | None = None  # the store's newest tree, asked once per request
    exit_drafter: Callable[[], Drafter] | None = None  # a fresh early-exit drafter
    controls: Any = None  # the service's ControlState (the hybrid's sides)

    def global_tree(self) -> SuffixIndex | None:
        return self.tree() if self.tree is not None else None


@dataclass(frozen=True)
class DrafterKind:
    """One drafting kind.

    ``control``: the draft-control source that sizes this kind's drafts (``"suffix"``,
    ``"eesd"``; None: the drafter sizes its drafts itself and its control passes them
    through). ``max_len``: the longest chain a paced drafter grows, for the Thompson-sampling
    controls (None: no such cap). ``chain``: only each draft's most probable path is verified.
    ``store``: it drafts from the store's tree (the store must be open). ``exit_layer``:
    "needs" (refused without one), "wants" (uses one if trained) or None.
    """

    name: str
    build: Callable[[Sources, DraftSettings], Drafter]
    help: str
    control: str | None = "suffix"
    max_len: Callable[[DraftSettings], int | None] | None = None
    chain: bool = False
    store: bool = False
    exit_layer: str | None = None

    @property
    def drafts(self) -> bool:
        """False for the kind that never drafts (plain decoding)."""
        return self.name != "off"


_KINDS: dict[str, DrafterKind] = {}


def register(kind: DrafterKind) -> DrafterKind:
    """Add (or replace) a drafting kind; its name becomes a valid ``spec``."""
    _KINDS[kind.name] = kind
    return kind


def unregister(name: str) -> None:
    _KINDS.pop(name, None)


def names() -> tuple[str, ...]:
    return tuple(_KINDS)


def kind_of(spec: str) -> DrafterKind:
    """The entry for ``spec`` (ValueError naming the known ones)."""
    kind = _KINDS.get(spec)
    if kind is None:
        raise ValueError(f"spec must be one of {', '.join(_KINDS)}, not {spec!r}")
    return kind


def help_text() -> str:
    """The kinds and what they do, one sentence each (the CLI's --spec help)."""
    return "; ".join(f"{k.name}: {k.help}" for k in _KINDS.values()) + "."


def _tree(sources: Sources, settings: DraftSettings) -> Drafter:
    return SuffixDrafter(sources.global_tree(), settings)


def _chain(sources: Sources, settings: DraftSettings) -> Drafter:
    return SuffixDrafter(sources.global_tree(), settings, chain=True)


def _early_exit(sources: Sources, settings: DraftSettings) -> Drafter:
    return sources.exit_drafter()  # the service refuses this kind without one


def _hybrid(sources: Sources, settings: DraftSettings) -> Drafter:
    early = sources.exit_drafter() if sources.exit_drafter is not None else None
    return HybridDrafter(_tree(sources, settings), early, sides(sources.controls, settings), settings)


register(DrafterKind("tree", _tree, "verify draft trees from past outputs", store=True))
register(DrafterKind("chain", _chain, "verify only each draft's most probable path", chain=True, store=True))
register(
    DrafterKind(
        "eesd",
        _early_exit,
        "chains from the model's own early-exit layer (train it with `sufdec train-exit`)",
        control="eesd",
        max_len=lambda s: s.exit_max_len,
        exit_layer="needs",
    )
)
register(
    DrafterKind(
        "hybrid",
        _hybrid,
        "each step the suffix draft or an early-exit chain, whichever is expected to pay more, "
        "or none (suffix only until an exit layer is trained)",
        control=None,
        store=True,
        exit_layer="wants",
    )
)
register(DrafterKind("off", lambda _s, _d: NullDrafter(), "plain decoding", control=None))
