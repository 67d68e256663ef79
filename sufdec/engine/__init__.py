"""The engine: a model, a tokenizer and a drafter -> tokens.

Loading, tree layout, verification, KV compaction, sampling and the decode loop. It
knows nothing of stores or prompts' chat templates (that is ``sufdec.session``). It
imports torch and transformers; so do the layers above it that run models (the session,
the generation benchmark), and nothing below it (``suffix``, ``store``, ``drafters``).
"""

from sufdec.engine.accept import Acceptor, AcceptResult, SamplingParams
from sufdec.engine.config import GenerationConfig, ResolvedGeneration, resolve_generation
from sufdec.engine.generator import (
    GenerationResult,
    RequestState,
    SpeculativeGenerator,
    StepResult,
    StepTimings,
)
from sufdec.engine.loading import ModelLoadError, convert_gguf_to_safetensors, load_model
from sufdec.engine.tree import TreeLayout, layout_tree

__all__ = [
    "AcceptResult",
    "Acceptor",
    "SamplingParams",
    "GenerationConfig",
    "GenerationResult",
    "ResolvedGeneration",
    "resolve_generation",
    "RequestState",
    "SpeculativeGenerator",
    "StepResult",
    "StepTimings",
    "ModelLoadError",
    "convert_gguf_to_safetensors",
    "load_model",
    "TreeLayout",
    "layout_tree",
]
