"""The exit layer's training settings (``sufdec train-exit`` builds its options from them).

No torch here, so that the command line can read them without loading it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sufdec.knobs import knob


@dataclass(frozen=True)
class TrainSettings:
    """One training run of the exit layer at ``layer``."""

    layer: int
    steps: int = knob(450, "Optimizer steps in all (a re-run resumes up to this)", low=1)
    lr: float = knob(5e-4, "Peak learning rate (cosine decay), finite", low=0.0)
    batch: int = 8  # chunks per step
    chunk: int = 128  # tokens per chunk
    top_k: int = 32  # teacher probabilities kept per position
    draft_vocab: int = knob(
        8192,
        "Draft with the N most frequent tokens of the data only (0: the whole vocabulary); verification "
        "always uses the full head",
        low=0,
    )
    held_out: float = 0.1  # share of chunks kept for the acceptance figure
    init_from: int | None = knob(
        None, "Target layer the exit layer starts as a copy of", low=0, shown="the last, whose output the head reads"
    )
    checkpoint_every: int = 50
    seed: int = 0
