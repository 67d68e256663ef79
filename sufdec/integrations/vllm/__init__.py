"""sufdec inside vLLM: the persistent store as a speculative proposer (docs/VLLM.md).

    vllm serve MODEL --worker-cls sufdec.integrations.vllm.Worker \\
      --speculative-config '{"method": "custom_class", "num_speculative_tokens": 8,
                             "model": "sufdec.integrations.vllm.Proposer"}'

Modules: ``config`` (the one settings object, read from ``SUFDEC_STORE`` and
``SUFDEC_VLLM_CONFIG``), ``opening`` (version, tokenizer and store checks), ``drafting``
(per-request state while a request runs), ``learning`` (which finished outputs are
learned, appended off the hot path), ``proposer`` (vLLM's ``custom_class`` interface),
``worker`` (the worker subclass that tells the proposer which request each row is and when
requests finish). vLLM itself is imported only when vLLM builds these classes.
"""

from typing import Any

from sufdec.integrations.vllm.config import IntegrationConfig
from sufdec.integrations.vllm.proposer import Proposer

__all__ = ["IntegrationConfig", "Proposer", "Worker"]


def __getattr__(name: str) -> Any:
    if name == "Worker":  # built over the platform's own worker, on first use
        from sufdec.integrations.vllm import worker

        return worker.Worker
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
