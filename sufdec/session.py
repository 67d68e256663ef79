"""The application layer: one loaded model, its store and the suffix drafter, opened together.

This is what ``sufdec generate`` runs, and what a Python user who wants the same
behaviour (load once, generate many prompts, learn from each) calls directly:

    session = GenerationSession.open(SessionConfig())
    ids = session.encode("Write a haiku about suffix trees")
    result = session.generate(ids, session.generation_config(ids, max_new_tokens=64))

It is the only module below the CLI that joins the engine (model -> tokens), the store
and the model cache. Environment variables (``SUFDEC_STORE``, ``SUFDEC_CACHE_DIR``) are
read once, in ``GenerationSession.open``, for the fields of ``SessionConfig`` left None.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from sufdec import models
from sufdec.drafters import registry
from sufdec.drafters.service import DraftService
from sufdec.drafters.settings import DraftSettings
from sufdec.engine.config import DEFAULT_MAX_NEW_TOKENS, GenerationConfig, model_defaults
from sufdec.engine.generator import GenerationResult, SpeculativeGenerator
from sufdec.engine.loading import ModelLoadError, convert_gguf_to_safetensors, load_model
from sufdec.prompts import Request, encode_prompt
from sufdec.tokenization import tokenizer_info


class PromptTooLongError(ValueError):
    """The prompt does not fit the model's context window."""


@dataclass(frozen=True)
class SessionConfig:
    """Everything ``sufdec generate`` takes besides the prompts and sampling settings.

    ``draft`` is the one source of drafting settings (``spec="off"``: plain decoding,
    which still learns unless ``learn`` is False). ``store``/``cache_root`` None: from
    ``$SUFDEC_STORE`` / ``$SUFDEC_CACHE_DIR``, else the user data / cache directory.
    """

    model: Optional[str] = None  # None: the default model, pulled on first use
    gguf_file: Optional[str] = None
    exit_layer_path: Optional[Path] = None  # spec "eesd": None finds the one trained for the model
    store: Optional[Path] = None
    cache_root: Optional[Path] = None
    device: str = "auto"
    dtype: str = "auto"
    device_map: Optional[str] = None
    attn: str = "auto"
    draft: DraftSettings = field(default_factory=DraftSettings)
    learn: bool = True
    trust_remote_code: bool = False  # run Python code the model folder ships (an auto_map in its config)


def _looks_like_path(spec: str) -> bool:
    return spec.startswith(("/", ".", "~")) or spec.endswith(".gguf") or "\\" in spec


def default_model(cache_root: Path, say: Callable[[str], None] = lambda _m: None) -> Path:
    """The default model's folder in ``cache_root``, pulled (and converted) on first use."""
    return models.ensure_default_model(cache_root, convert_gguf_to_safetensors, say)


def exit_drafter_factory(
    model: Any,
    draft: DraftSettings,
    cache_root: Path,
    path: Optional[Path] = None,
    say: Callable[[str], None] = lambda _m: None,
) -> Callable[[], Any]:
    """A factory of early-exit drafters over the exit layer at ``path`` (None: the one
    trained for ``model`` in the cache, at ``draft.exit_layer`` or the newest)."""
    from sufdec.eesd import exit_model
    from sufdec.eesd.drafter import EarlyExitDrafter

    fingerprint = exit_model.model_fingerprint(model)
    if path is None:
        folder = exit_model.default_folder(cache_root, fingerprint)
        path = exit_model.find_exit_layer(folder, draft.exit_layer)
        if path is None:
            which = f"at layer {draft.exit_layer} " if draft.exit_layer is not None else ""
            raise exit_model.ExitLayerError(
                f"no exit layer {which}trained for this model yet: run `sufdec train-exit` first"
            )
    draft_model, info = exit_model.load_exit_layer(model, Path(path), fingerprint)
    vocab = info.extra.get("draft_vocab")
    held = f"{info.held_out_acceptance:.1%}" if info.held_out_acceptance is not None else "not measured"
    say(
        f"early exit after layer {info.layer} of {info.num_layers} (held-out acceptance "
        f"{held}, draft vocabulary {len(vocab) if vocab else 'full'})"
    )
    return lambda: EarlyExitDrafter(
        draft_model, vocab, max_len=draft.exit_max_len, min_prob=draft.exit_min_prob, branch=draft.exit_branch
    )


class GenerationSession:
    """A loaded model + store + drafting service; ``generate`` serves one request at a time."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        store: Any,
        config: SessionConfig,
        exit_drafter: Optional[Callable[[], Any]] = None,
    ) -> None:
        """``exit_drafter``: a factory of early-exit drafters (kinds that use an exit layer)."""
        self.model = model
        self.tokenizer = tokenizer
        self.store = store
        self.config = config
        self.last_learned: Optional[int] = None
        self.drafting = DraftService(
            config.draft,
            tree=self._newest_tree if store is not None else None,
            exit_drafter=exit_drafter,
            learn=self._learn if config.learn and store is not None else None,
        )
        self.generator = SpeculativeGenerator(model, tokenizer, drafting=self.drafting)

    @classmethod
    def open(cls, config: SessionConfig, say: Callable[[str], None] = lambda _m: None) -> "GenerationSession":
        """Load the model and open the store; None paths are resolved here, once."""
        from sufdec.store import Store, resolve_store_path

        root = Path(config.cache_root if config.cache_root is not None else models.default_cache_root(os.environ))
        spec = config.model
        if spec is None:
            spec = str(default_model(root, say))
        elif _looks_like_path(spec) and not Path(spec).expanduser().exists():
            raise ModelLoadError(f"no model at {spec}: expected a Hugging Face folder or a .gguf file")
        name = Path(str(spec)).name if Path(str(spec)).exists() else str(spec)
        say(f"loading {name} ...")
        model, tokenizer = load_model(
            spec,
            device=config.device,
            dtype=config.dtype,
            device_map=config.device_map,
            attn=config.attn,
            gguf_file=config.gguf_file,
            trust_remote_code=config.trust_remote_code,
        )
        kind = registry.kind_of(config.draft.spec)
        store = None
        if kind.store or config.learn:
            path = resolve_store_path(config.store, os.environ)
            store = Store.open(path, tokenizer_info(tokenizer, Path(name).stem))
        return cls(model, tokenizer, store, config, cls._exit_layer(kind, model, config, root, say))

    @staticmethod
    def _exit_layer(
        kind: registry.DrafterKind, model: Any, config: SessionConfig, root: Path, say: Callable[[str], None]
    ) -> Optional[Callable[[], Any]]:
        """The early-exit drafter factory a kind needs (an error without one) or wants (None,
        said once, without one)."""
        if kind.exit_layer is None or config.draft.max_spec_tokens <= 0:
            return None
        from sufdec.eesd.exit_model import ExitLayerError

        try:
            return exit_drafter_factory(model, config.draft, root, config.exit_layer_path, say)
        except ExitLayerError as exc:
            if kind.exit_layer == "needs":
                raise
            say(f"{kind.name} drafts from the suffix trees only: {exc}")
            return None

    # ------------------------------------------------------------------ the drafting service's sources
    def _newest_tree(self) -> Any:
        """The store's newest tree (other processes' outputs too), at each request's start."""
        self.store.refresh()
        return self.store.tree

    def _learn(self, output_ids: list[int]) -> Optional[int]:
        return self.store.append(output_ids, source={"from": "generate"})

    # ------------------------------------------------------------------ generating
    def encode(self, request: Request, *, chat: bool = True, system: Optional[str] = None) -> list[int]:
        """Prompt ids of a text or a {"prompt"}/{"messages"} request (see ``sufdec.prompts``)."""
        return encode_prompt(self.tokenizer, request, chat=chat, system=system)

    def generation_config(
        self, prompt_ids: list[int], *, say: Callable[[str], None] = lambda _m: None, **settings: Any
    ) -> GenerationConfig:
        """A GenerationConfig for this prompt with the session's drafting settings, and
        max_new_tokens (the given one, else the model's default) capped to the context window.
        Settings left out or None take the model's own generation defaults."""
        limit = getattr(self.model.config, "max_position_embeddings", None)
        settings = {k: v for k, v in settings.items() if v is not None}
        max_new = settings.pop("max_new_tokens", None)
        if max_new is None:
            max_new = model_defaults(self.model)["max_new_tokens"] or DEFAULT_MAX_NEW_TOKENS
        if limit is not None:
            if len(prompt_ids) >= limit:
                raise PromptTooLongError(
                    f"the prompt has {len(prompt_ids)} tokens but the model's context holds {limit}"
                )
            if len(prompt_ids) + max_new > limit:
                max_new = limit - len(prompt_ids)
                say(f"max new tokens capped to {max_new} by the model's context of {limit}")
        return GenerationConfig(max_new_tokens=max_new, **settings)

    def generate(self, prompt_ids: list[int], config: GenerationConfig, streamer: Any = None) -> GenerationResult:
        """One request; its output is learned by the drafting service when it ends by itself."""
        result = self.generator.generate(prompt_ids, config, streamer=streamer)
        self.last_learned = result.drafting.get("learned_id")
        return result

    def text_streamer(self) -> Any:
        from transformers import TextStreamer

        return TextStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)

    def summary(self, result: GenerationResult) -> dict:
        """The per-prompt JSON object of ``sufdec generate --json``."""
        return {
            "text": result.text,
            "new_tokens": result.new_tokens,
            "steps": result.steps,
            "drafted": sum(s.drafted for s in result.step_results),  # nodes the drafter proposed
            "verified": sum(s.verified for s in result.step_results),  # of them, verified by the model
            "accepted": sum(s.accepted_nodes for s in result.step_results),  # of those, accepted
            "tokens_per_step": round(result.mean_tokens_per_step, 4),
            "tokens_per_s": round(result.tokens_per_s, 3),
            "elapsed_s": round(result.elapsed_s, 4),
            "prefill_s": round(result.prefill_s, 4),
            "finish_reason": result.finish_reason,
            "spec": result.drafting.get("spec", self.config.draft.spec),
            "learned": self.last_learned is not None,
            "step_ms": {k: round(v, 3) for k, v in result.mean_timings_ms().items()},
        }

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None
