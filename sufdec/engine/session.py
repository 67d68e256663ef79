"""A generation session: one loaded model, its store, and the suffix drafter, ready to serve.

This is what ``sufdec generate`` runs, and what a Python user who wants the same
behaviour (load once, generate many prompts, learn from each) calls directly:

    session = GenerationSession.open(SessionConfig(model=None, store=None))
    result = session.generate(session.tokenizer.apply_chat_template(...), session.generation_config(ids))
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from sufdec.drafters.suffix import SuffixDrafter, SuffixDrafterConfig
from sufdec.engine.generator import GenerationConfig, GenerationResult, SpeculativeGenerator
from sufdec.engine.loading import load_model


class PromptTooLongError(ValueError):
    """The prompt does not fit the model's context window."""


@dataclass(frozen=True)
class SessionConfig:
    """Everything ``sufdec generate`` takes besides the prompts and sampling settings."""

    model: Optional[str] = None  # None: the default model, pulled on first use
    gguf_file: Optional[str] = None
    store: Optional[Path] = None  # None: $SUFDEC_STORE or the user data dir
    device: str = "auto"
    dtype: str = "auto"
    device_map: Optional[str] = None
    attn: str = "auto"
    spec: str = "tree"  # tree | path | off
    max_spec_tokens: int = 32
    draft_mode: str = "merged"  # merged | paper (see SuffixDrafterConfig)
    spec_factor: float = 1000.0
    spec_offset: float = 0.0
    min_token_prob: float = 0.0
    use_request_tree: bool = True
    learn: bool = True
    sizing: str = "cost"  # cost | fixed


def tokenizer_info(tokenizer: Any, name: str):
    """The store identity (name, fingerprint) of a transformers tokenizer."""
    from sufdec.store import TokenizerInfo
    from sufdec.tokenization import fingerprint

    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise ValueError("sufdec needs a fast (tokenizers-backed) tokenizer to fingerprint the store")
    return TokenizerInfo(name, fingerprint(backend))


def _looks_like_path(spec: str) -> bool:
    return spec.startswith(("/", ".", "~")) or spec.endswith(".gguf") or "\\" in spec


class GenerationSession:
    """A loaded model + store + drafter; ``generate`` serves one request at a time."""

    def __init__(self, model: Any, tokenizer: Any, store: Any, config: SessionConfig) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.store = store
        self.config = config
        self.last_learned: Optional[int] = None
        drafter = None if config.spec == "off" or store is None else self._new_drafter
        self.generator = SpeculativeGenerator(
            model, tokenizer, drafter, cost_model="auto" if config.sizing == "cost" else None
        )

    @classmethod
    def open(cls, config: SessionConfig, say: Callable[[str], None] = lambda _m: None) -> "GenerationSession":
        from sufdec import models

        spec = config.model
        if spec is None:
            spec = str(models.ensure_default_model(say))
        elif _looks_like_path(spec) and not Path(spec).expanduser().exists():
            from sufdec.engine.loading import ModelLoadError

            raise ModelLoadError(f"no model at {spec}: expected a Hugging Face folder or a .gguf file")
        name = Path(str(spec)).name if Path(str(spec)).exists() else str(spec)
        say(f"loading {name} ...")
        model, tokenizer = load_model(spec, device=config.device, dtype=config.dtype,
                                      device_map=config.device_map, attn=config.attn,
                                      gguf_file=config.gguf_file)
        store = None
        if config.spec != "off" or config.learn:
            from sufdec.store import Store, default_store_path

            path = Path(config.store).expanduser() if config.store is not None else default_store_path()
            store = Store.open(path, tokenizer_info(tokenizer, Path(name).stem))
        return cls(model, tokenizer, store, config)

    # ------------------------------------------------------------------ drafting
    def _new_drafter(self) -> SuffixDrafter:
        """A fresh drafter per request, over the store's newest tree (other processes' outputs too)."""
        self.store.refresh()
        c = self.config
        cfg = SuffixDrafterConfig(
            use_tree=c.spec == "tree", max_spec_tokens=c.max_spec_tokens, max_spec_factor=c.spec_factor,
            max_spec_offset=c.spec_offset, min_token_prob=c.min_token_prob,
            use_request_tree=c.use_request_tree, mode=c.draft_mode,
        )
        return SuffixDrafter(self.store.tree, cfg, learn=self._learn if c.learn else None)

    def _learn(self, output_ids: list[int]) -> None:
        self.last_learned = self.store.append(output_ids, source={"from": "generate"})

    # ------------------------------------------------------------------ generating
    def generation_config(self, prompt_ids: list[int], *, say: Callable[[str], None] = lambda _m: None,
                          **settings: Any) -> GenerationConfig:
        """A GenerationConfig for this prompt, with max_new_tokens capped to the context window."""
        limit = getattr(self.model.config, "max_position_embeddings", None)
        max_new = settings.pop("max_new_tokens", 256)
        if limit is not None:
            if len(prompt_ids) >= limit:
                raise PromptTooLongError(
                    f"the prompt has {len(prompt_ids)} tokens but the model's context holds {limit}"
                )
            if len(prompt_ids) + max_new > limit:
                max_new = limit - len(prompt_ids)
                say(f"max new tokens capped to {max_new} by the model's context of {limit}")
        spec = "off" if self.config.spec == "off" else "tree"
        sizing = "cost" if self.config.sizing == "cost" else "fixed"
        return GenerationConfig(max_new_tokens=max_new, spec=spec, max_spec_tokens=self.config.max_spec_tokens,
                                draft_sizing=sizing, **settings)

    def generate(self, prompt_ids: list[int], config: GenerationConfig, streamer: Any = None) -> GenerationResult:
        self.last_learned = None
        result = self.generator.generate(prompt_ids, config, streamer=streamer)
        if self.config.spec == "off" and self.config.learn and self.store is not None and result.token_ids:
            self._learn(result.token_ids)  # plain decoding drafts nothing but still learns
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
            "accepted_per_step": round(result.mean_accepted, 4),
            "tokens_per_s": round(result.tokens_per_s, 3),
            "elapsed_s": round(result.elapsed_s, 4),
            "prefill_s": round(result.prefill_s, 4),
            "finish_reason": result.finish_reason,
            "spec": self.config.spec,
            "learned": self.last_learned is not None,
            "step_ms": {k: round(v, 3) for k, v in result.mean_timings_ms().items()},
        }

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None
