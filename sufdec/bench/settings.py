"""What one generation benchmark run is: its settings, its methods, and the hooks it reports through.

``BenchSettings`` is the run (workload, model, split sizes, dtype, device, protocol) and
embeds one ``DraftSettings`` for the suffix methods instead of re-spelling its fields.
``method_draft`` says what each named method drafts, so that the runners, the report and
results.json all read the same settings. Nothing here imports torch.

Methods
- ``vanilla``: transformers ``model.generate(do_sample=False)``; the baseline of every ratio.
- ``pld``: transformers prompt lookup decoding (``prompt_lookup_num_tokens``).
- ``suffix-tree``: SpeculativeGenerator + SuffixDrafter with ``BenchSettings.draft``
  (by default the merged preset), tree drafts.
- ``suffix-chain``: the same, verifying only each draft's most probable path.
- ``suffix-paper``: the published algorithm (the ``paper`` preset: factor 4, min
  probability 0.1, tree drafts) at the same budget and sizing.
- ``eesd``: early-exit chains from the model's own trained exit layer (``sufdec train-exit``;
  ``BenchSettings.exit_layer``, else the newest trained for the model), sized like the rest.
- ``hybrid``: each step the suffix tree draft or an early-exit chain, whichever is expected
  to pay more, or none (``sufdec.drafters.hybrid``); suffix only without an exit layer.
- ``sufdec-off``: sufdec's own decode loop with no drafts (its overhead over ``vanilla``).
- ``suffix-tree@K`` (``bench scaling`` only): ``suffix-tree`` over the first K train outputs.
- ``METHOD:SIZING`` (for example ``eesd:beta-ts``): the method with another draft control
  (``cost``, ``fixed``, ``beta-ts``, ``calibration-ts``) than the run's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

from sufdec.drafters.settings import SIZINGS, DraftSettings
from sufdec.knobs import check, knob

METHODS = ("vanilla", "pld", "suffix-chain", "suffix-tree", "suffix-paper", "eesd", "hybrid", "sufdec-off")
DEFAULT_METHODS = ("vanilla", "pld", "suffix-chain", "suffix-tree")
HF_METHODS = ("vanilla", "pld")  # run by transformers' generate(), not by sufdec's decode loop
CORPORA = ("model", "reference")

# progress(label, total) -> advance(k); None: silent
Progress = Optional[Callable[[str, int], Callable[[int], None]]]
Say = Callable[[str], None]


def is_method(name: str) -> bool:
    base, sep, sizing = name.partition(":")
    if sep and (sizing not in SIZINGS or base in HF_METHODS):
        return False
    return base in METHODS or base.startswith("suffix-tree@")


@dataclass(frozen=True)
class BenchSettings:
    """One benchmark run. ``train``/``eval`` are upper bounds: a workload may have fewer.

    ``model`` is a model folder, .gguf file or hub id (the CLI resolves its default).
    ``draft`` is what ``suffix-tree`` drafts; ``suffix-chain`` and ``suffix-paper`` derive
    theirs from it (see :func:`method_draft`), so budget and sizing are set once here.
    """

    workload: str  # spider | humaneval | sharegpt | path to a JSONL file
    model: str
    train: int = knob(256, "Train outputs in the store (at most; split 80/20 by index)", low=0)
    eval: int = knob(32, "Held-out prompts to decode (at most)", low=1)
    methods: tuple[str, ...] = DEFAULT_METHODS
    max_new_tokens: int = knob(256, "Most tokens generated per prompt", low=1)
    corpus: str = knob(
        "model",
        "model: the model's own greedy outputs for the train split (generated once, cached); reference: "
        "the dataset's reference outputs",
        choices=CORPORA,
    )
    dtype: str = knob("float32", "The model's dtype", choices=("float32", "bfloat16"))
    device: str = knob("cpu", "cpu, cuda, or auto (cuda when there is one)", choices=("cpu", "cuda", "auto"))
    online: bool = False  # add each finished held-out output to the store
    draft: DraftSettings = field(default_factory=DraftSettings)
    pld_tokens: int = 10
    max_prompt_tokens: int = knob(2048, "Skip longer prompts (CPU prefill cost)", low=1)
    batch_size: int = 8  # corpus generation batch on CPU (x8 on a GPU)
    warmup: bool = True  # one untimed run of every method first
    exit_layer: Optional[str] = None  # eesd: the exit layer's weights file (None: the newest trained)
    trust_remote_code: bool = False  # run Python code the model folder ships (an auto_map in its config)

    def __post_init__(self) -> None:
        methods = tuple(dict.fromkeys(self.methods))
        bad = [m for m in methods if not is_method(m)]
        if bad:
            raise ValueError(f"unknown method(s) {', '.join(bad)}; choose from {', '.join(METHODS)}")
        if "vanilla" not in methods:  # every ratio and the losslessness check need it
            methods = ("vanilla",) + methods
        object.__setattr__(self, "methods", methods)
        check(self)
        if not isinstance(self.draft, DraftSettings):
            raise TypeError("draft must be a DraftSettings (see sufdec.suffix.settings)")


def method_draft(method: str, draft: DraftSettings) -> Optional[DraftSettings]:
    """What ``method`` drafts, given the run's ``draft`` settings (None: a transformers method).

    ``suffix-tree`` (and ``suffix-tree@K``) use ``draft`` as it is; ``suffix-chain`` the
    same with ``spec="chain"``; ``suffix-paper`` the paper preset with ``draft``'s budget
    and sizing; ``sufdec-off`` ``spec="off"``.
    """
    name, _, sizing = method.partition(":")
    if sizing:
        draft = draft.replace(sizing=sizing)
    base = name.split("@")[0]
    if base in HF_METHODS:
        return None
    if base == "suffix-tree":
        return draft.replace(spec="tree")
    if base == "suffix-chain":
        return draft.replace(spec="chain")
    if base == "suffix-paper":
        return DraftSettings.preset("paper", max_spec_tokens=draft.max_spec_tokens, sizing=draft.sizing)
    if base in ("eesd", "hybrid"):
        return draft.replace(spec=base)
    if base == "sufdec-off":
        return draft.replace(spec="off")
    raise ValueError(f"unknown method {method!r}")
