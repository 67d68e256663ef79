"""The engine: the only part of sufdec that imports torch and transformers."""

from sufdec.engine.accept import AcceptResult, Acceptor, SamplingParams
from sufdec.engine.generator import (
    GenerationConfig,
    GenerationResult,
    RequestState,
    SpeculativeGenerator,
    StepResult,
    StepTimings,
)
from sufdec.engine.loading import ModelLoadError, convert_gguf_to_safetensors, load_model
from sufdec.engine.tree import TreeLayout, layout_tree

__all__ = [
    "AcceptResult", "Acceptor", "SamplingParams", "GenerationConfig", "GenerationResult",
    "RequestState", "SpeculativeGenerator", "StepResult", "StepTimings", "ModelLoadError",
    "convert_gguf_to_safetensors", "load_model", "TreeLayout", "layout_tree",
]
