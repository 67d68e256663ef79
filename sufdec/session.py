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
from sufdec.drafters.hybrid import HybridDrafter
from sufdec.drafters.suffix import SuffixDrafter
from sufdec.engine.config import DEFAULT_MAX_NEW_TOKENS, GenerationConfig, model_defaults
from sufdec.engine.generator import GenerationResult, SpeculativeGenerator
from sufdec.engine.loading import ModelLoadError, convert_gguf_to_safetensors, load_model
from sufdec.prompts import Request, encode_prompt
from sufdec.suffix.settings import DraftSettings
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


def exit_drafter_factory(model: Any, draft: DraftSettings, cache_root: Path, path: Optional[Path] = None,
                         say: Callable[[str], None] = lambda _m: None) -> Callable[[], Any]:
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
                f"no exit layer {which}trained for this model yet: run `sufdec train-exit` first")
    draft_model, info = exit_model.load_exit_layer(model, Path(path), fingerprint)
    vocab = info.extra.get("draft_vocab")
    say(f"early exit after layer {info.layer} of {info.num_layers} (held-out acceptance "
        f"{info.held_out_acceptance}, draft vocabulary {len(vocab) if vocab else 'full'})")
    return lambda: EarlyExitDrafter(draft_model, vocab, max_len=draft.exit_max_len, min_prob=draft.exit_min_prob,
                                    branch=draft.exit_branch)


class GenerationSession:
    """A loaded model + store + drafter; ``generate`` serves one request at a time."""

    def __init__(self, model: Any, tokenizer: Any, store: Any, config: SessionConfig,
                 exit_drafter: Optional[Callable[[], Any]] = None) -> None:
        """``exit_drafter``: a factory of early-exit drafters (``spec="eesd"``)."""
        self.model = model
        self.tokenizer = tokenizer
        self.store = store
        self.config = config
        self.last_learned: Optional[int] = None
        factory: Optional[Callable[[], Any]] = None
        self._drafter_learns = False  # the suffix drafter appends each output itself (its end())
        self._exit_drafter = exit_drafter
        if config.draft.enabled and config.draft.spec == "eesd":
            if exit_drafter is None:
                raise ValueError("spec 'eesd' needs an exit layer (see GenerationSession.open)")
            factory = exit_drafter
        elif config.draft.enabled and store is not None:
            factory = self._new_hybrid if config.draft.spec == "hybrid" else self._new_drafter
            self._drafter_learns = True
        self.generator = SpeculativeGenerator(model, tokenizer, drafter_factory=factory)

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
        model, tokenizer = load_model(spec, device=config.device, dtype=config.dtype,
                                      device_map=config.device_map, attn=config.attn,
                                      gguf_file=config.gguf_file, trust_remote_code=config.trust_remote_code)
        store = None
        if config.draft.spec in ("tree", "chain", "hybrid") or config.learn:
            path = resolve_store_path(config.store, os.environ)
            store = Store.open(path, tokenizer_info(tokenizer, Path(name).stem))
        exit_drafter = None
        if config.draft.spec == "eesd":
            exit_drafter = exit_drafter_factory(model, config.draft, root, config.exit_layer_path, say)
        elif config.draft.spec == "hybrid":
            from sufdec.eesd.exit_model import ExitLayerError

            try:
                exit_drafter = exit_drafter_factory(model, config.draft, root, config.exit_layer_path, say)
            except ExitLayerError as exc:
                say(f"hybrid drafts from the suffix trees only: {exc}")
        return cls(model, tokenizer, store, config, exit_drafter)

    # ------------------------------------------------------------------ drafting
    def _new_drafter(self) -> SuffixDrafter:
        """A fresh drafter per request, over the store's newest tree (other processes' outputs too)."""
        self.store.refresh()
        learn = self._learn if self.config.learn else None
        return SuffixDrafter(self.store.tree, self.config.draft, learn=learn)

    def _new_hybrid(self) -> HybridDrafter:
        """The suffix drafter and, where an exit layer is trained, an early-exit drafter."""
        early = self._exit_drafter() if self._exit_drafter is not None else None
        return HybridDrafter(self._new_drafter(), early, self.generator.controls, self.config.draft)

    def _learn(self, output_ids: list[int]) -> None:
        self.last_learned = self.store.append(output_ids, source={"from": "generate"})

    # ------------------------------------------------------------------ generating
    def encode(self, request: Request, *, chat: bool = True, system: Optional[str] = None) -> list[int]:
        """Prompt ids of a text or a {"prompt"}/{"messages"} request (see ``sufdec.prompts``)."""
        return encode_prompt(self.tokenizer, request, chat=chat, system=system)

    def generation_config(self, prompt_ids: list[int], *, say: Callable[[str], None] = lambda _m: None,
                          **settings: Any) -> GenerationConfig:
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
        return GenerationConfig(max_new_tokens=max_new, draft=self.config.draft, **settings)

    def generate(self, prompt_ids: list[int], config: GenerationConfig, streamer: Any = None) -> GenerationResult:
        self.last_learned = None
        result = self.generator.generate(prompt_ids, config, streamer=streamer)
        drafter_learned = self._drafter_learns and config.draft.enabled
        if not drafter_learned and self.config.learn and self.store is not None and result.token_ids:
            self._learn(result.token_ids)  # plain decoding and early exit learn here
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
            "tokens_per_step": round(result.mean_tokens_per_step, 4),
            "tokens_per_s": round(result.tokens_per_s, 3),
            "elapsed_s": round(result.elapsed_s, 4),
            "prefill_s": round(result.prefill_s, 4),
            "finish_reason": result.finish_reason,
            "spec": self.config.draft.spec,
            "learned": self.last_learned is not None,
            "step_ms": {k: round(v, 3) for k, v in result.mean_timings_ms().items()},
        }

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None
