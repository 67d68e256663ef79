"""sufdec inside vLLM: the persistent store as a speculative proposer (docs/VLLM.md).

    vllm serve MODEL --worker-cls sufdec.integrations.vllm.Worker \\
      --speculative-config '{"method": "custom_class", "num_speculative_tokens": 8,
                             "model": "sufdec.integrations.vllm.Proposer"}'

A thin adapter over sufdec's drafting service (``sufdec.drafters.service``, opened for a
serving engine by ``sufdec.drafters.serving``: the store, its follower, background
learning, the measured price of a verified token). Modules: ``config`` (the one settings
object, read from ``SUFDEC_STORE`` and ``SUFDEC_VLLM_CONFIG``; what the adapter cannot
honour is refused), ``opening`` (the vLLM version check), ``drafting`` (batch rows to the
service's requests), ``learning`` (which finished outputs count), ``proposer`` (vLLM's
``custom_class`` interface), ``worker`` (the worker subclass that tells the proposer which
request each row is, when requests finish and when a step starts). vLLM itself is
imported only when vLLM builds these classes.
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
