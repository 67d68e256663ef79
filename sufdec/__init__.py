"""sufdec: SuffixDecoding with a persistent suffix tree over past outputs.

The package's layers, lowest first (``LAYERS``: the one statement of them; the README's
Architecture list quotes it and ``tests/misc/test_layers.py`` enforces it). A module imports
only modules of its own layer or a lower one, with no circles. Importing ``sufdec`` itself
is cheap: nothing heavy is imported here.
"""

__version__ = "0.1.0"

LAYERS: tuple[tuple[str, ...], ...] = (
    ("_core", "knobs"),  # C++17 suffix tree + nanobind bindings; settings fields with help and range
    ("suffix",),  # the core's Python face: Draft, SuffixIndex, RequestTree, SuffixSettings
    ("store",),  # LMDB: meta, sequences, snapshot + log, ingest, budgets
    ("share",),  # many hosts, one corpus: a store shared through a PostgreSQL table
    ("jsonl", "tokenization"),  # bounded JSONL reading; tokenizers without torch
    ("models", "prompts"),  # the model cache and default model; prompts to token ids
    ("drafters",),  # the drafting service, the drafter registry, DraftSettings, drafters, draft control
    ("engine",),  # the decode loop over a drafting service (torch)
    ("eesd",),  # the early-exit self-drafter (torch)
    ("session",),  # the application layer: model + store + drafting service
    ("integrations",),  # adapters inside other engines (vLLM)
    ("bench",),  # benchmarks
    ("cli",),  # the command line
    ("__main__",),
)
