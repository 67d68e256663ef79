"""sufdec: SuffixDecoding with a persistent suffix tree over past outputs.

The package is layered (see README "Architecture"):
``_core`` (C++ suffix tree) -> ``suffix`` (Python face, drafts) -> ``store`` (LMDB)
-> ``drafters`` / ``engine`` (torch, transformers) -> ``bench`` -> ``cli``.
Importing ``sufdec`` itself is cheap: nothing heavy is imported here.
"""

__version__ = "0.1.0"
