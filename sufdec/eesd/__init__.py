"""EESD: an early-exit self-drafter (Liu et al., ACL 2024 Findings, arXiv 2406.03853).

The draft model is the target's own first N layers plus one trained exit layer, ending in
the target's final norm and LM head. ``exit_model`` builds, saves and loads it (tied to one
target by a fingerprint), ``train`` trains the exit layer by self-distillation, ``data``
reads training text, ``drafter`` drafts chains with it behind the Drafter protocol.
Its modules import torch (``settings`` alone does not); it sits above the engine and below
the session.
"""
