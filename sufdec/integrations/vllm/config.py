"""The vLLM integration's one configuration object, and the one place it is read from.

vLLM builds the proposer inside its worker process from its own ``VllmConfig``, which has
no room for a third party's settings, so ours come from the environment that process
inherits, read once when the proposer is built:

* ``SUFDEC_STORE``: the store, as for every other sufdec command (else the user's default
  store, ``~/.local/share/sufdec/store`` on Linux);
* ``SUFDEC_SHARE``: a PostgreSQL URL, to share the store's outputs with other hosts
  (``sufdec.share``; the file's ``share`` overrides it);
* ``SUFDEC_VLLM_CONFIG``: the path of an optional JSON file with the fields below.

    {"store": "/srv/sufdec-store",     # overrides SUFDEC_STORE
     "learn": true,                    # append finished outputs to the store
     "preset": "merged",               # DraftSettings.preset name
     "draft": {"max_spec_tokens": 32}, # DraftSettings fields over the preset (spec: a chain
                                       # kind of the registry; sizing: "cost" or "fixed")
     "token_cost": "auto",             # sizing "cost": verify a token if P(accepted) >= this;
                                       # "auto": measured on the engine, per step (see sizing)
     "refresh_s": 1.0,                 # how often to pick up other processes' outputs
     "share": "postgresql://..."}      # a corpus shared with other hosts (default $SUFDEC_SHARE)

How many tokens a step verifies at most is vLLM's own ``num_speculative_tokens``.
Nothing here imports vLLM or torch.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sufdec.drafters import registry
from sufdec.drafters.settings import DraftSettings
from sufdec.store import resolve_store_path

CONFIG_ENV = "SUFDEC_VLLM_CONFIG"
KEYS = ("store", "learn", "preset", "draft", "token_cost", "refresh_s", "share")
SHARE_ENV = "SUFDEC_SHARE"


class ConfigError(ValueError):
    """The integration's configuration file is unusable (the message says why)."""


AUTO = "auto"
SIZINGS = ("cost", "fixed")  # what a batch step can honour: the Thompson-sampling policies size
# one request's drafts by its own forward's cost, which a step shared by many requests does not have

# vLLM verifies chains.
_VLLM_DEFAULTS = {"spec": "chain"}


def default_draft() -> DraftSettings:
    """The merged preset as vLLM can use it: chains."""
    return DraftSettings.preset("merged", **_VLLM_DEFAULTS)


@dataclass(frozen=True)
class IntegrationConfig:
    """Where the store is, whether finished outputs are learned, how drafts are grown.

    ``draft.spec`` is a registry kind that drafts chains (vLLM verifies a single path per
    request), ``"chain"`` by default: the best path of the draft, at most
    ``min(draft.max_spec_tokens, num_speculative_tokens)`` long. ``draft.sizing="cost"``
    (the default) then cuts it before the first token whose
    calibrated probability of being accepted is below ``token_cost``, what verifying one
    more token costs in tokens of output: ``"auto"`` (the default) measures it on the
    engine step by step (``sufdec.drafters.stepcost``; ``TOKEN_COST_PRIOR`` until it can tell), a number
    fixes it; ``"fixed"`` sizing verifies the chain whole.
    ``refresh_s``: the least time between two looks for outputs other processes stored.
    """

    store: Path
    learn: bool = True
    draft: DraftSettings = field(default_factory=default_draft)
    token_cost: float | str = AUTO
    refresh_s: float = 1.0
    share: str | None = None  # PostgreSQL URL of a corpus shared with other hosts (sufdec.share)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> "IntegrationConfig":
        """Read ``SUFDEC_VLLM_CONFIG`` (if set), ``SUFDEC_STORE`` and ``SUFDEC_SHARE``; nothing else reads them."""
        raw: dict[str, Any] = {}
        path = environ.get(CONFIG_ENV)
        if path:
            raw = _read_json(Path(path).expanduser())
        return cls.from_dict(raw, environ)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], environ: Mapping[str, str]) -> "IntegrationConfig":
        unknown = sorted(set(raw) - set(KEYS))
        if unknown:
            raise ConfigError(f"{CONFIG_ENV}: unknown key(s) {', '.join(unknown)}; known: {', '.join(KEYS)}")
        draft_fields = dict(raw.get("draft") or {})
        names = {f.name for f in dataclasses.fields(DraftSettings)}
        bad = sorted(set(draft_fields) - names)
        if bad:
            raise ConfigError(f"{CONFIG_ENV}: unknown draft field(s) {', '.join(bad)}")
        try:
            preset = DraftSettings.preset(raw.get("preset", "merged"))
            draft = preset.replace(**{**_VLLM_DEFAULTS, **draft_fields})
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{CONFIG_ENV}: {exc}") from exc
        _check_honoured(draft)
        token_cost = _token_cost(raw.get("token_cost", AUTO))
        refresh_s = float(raw.get("refresh_s", _default("refresh_s")))
        if refresh_s < 0:
            raise ConfigError(f"{CONFIG_ENV}: refresh_s must be >= 0")
        share = raw.get("share", environ.get(SHARE_ENV)) or None
        if share is not None and (not isinstance(share, str) or not share.startswith(("postgresql://", "postgres://"))):
            raise ConfigError(f"{CONFIG_ENV}: share must be a PostgreSQL URL (postgresql://...), not {share!r}")
        return cls(
            share=share,
            store=resolve_store_path(raw.get("store"), environ),
            learn=bool(raw.get("learn", _default("learn"))),
            draft=draft,
            token_cost=token_cost,
            refresh_s=refresh_s,
        )


def _default(name: str) -> Any:
    """An IntegrationConfig field's default (a key the file leaves out takes it)."""
    return next(f.default for f in dataclasses.fields(IntegrationConfig) if f.name == name)


def _check_honoured(draft: DraftSettings) -> None:
    """Refuse, in one line, a setting the vLLM adapter cannot honour."""
    chains = [k for k in registry.names() if registry.kind_of(k).chain]
    kind = registry.kind_of(draft.spec) if draft.spec in registry.names() else None
    if kind is None or not kind.chain:
        raise ConfigError(
            f"{CONFIG_ENV}: vLLM verifies chains only: draft.spec must be one of "
            f"{', '.join(chains)}, not {draft.spec!r}"
        )
    if kind.exit_layer == "needs":
        raise ConfigError(
            f"{CONFIG_ENV}: draft.spec {draft.spec!r} needs an exit layer, which the vLLM adapter does not load"
        )
    if draft.sizing not in SIZINGS:
        raise ConfigError(
            f"{CONFIG_ENV}: inside vLLM draft.sizing must be one of {', '.join(SIZINGS)}, not "
            f"{draft.sizing!r} (a step serves many requests; the Thompson-sampling policies "
            "size one request's drafts by its own forward)"
        )


def _token_cost(value: Any) -> float | str:
    if value == AUTO:
        return AUTO
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ConfigError(f'{CONFIG_ENV}: token_cost must be "auto" or a number between 0 and 1, not {value!r}')
    return float(value)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{CONFIG_ENV}={path}: cannot read it ({exc.strerror})") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{CONFIG_ENV}={path}: not JSON ({exc})") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{CONFIG_ENV}={path}: expected a JSON object")
    return raw


def current(environ: Mapping[str, str] | None = None) -> IntegrationConfig:
    """The configuration of this process (``os.environ`` unless another mapping is given)."""
    return IntegrationConfig.from_environ(os.environ if environ is None else environ)
