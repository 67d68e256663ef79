"""Thin adapters that put sufdec's store and drafters inside other inference engines.

Each adapter reads its one configuration object once, at the engine's entry point into
sufdec, and otherwise uses only the public faces of ``sufdec.store``, ``sufdec.suffix``
and ``sufdec.drafters``. ``sufdec.integrations.vllm``: the store as a speculative
proposer inside vLLM (see docs/VLLM.md).
"""
