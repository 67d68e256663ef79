"""Which vLLM the adapter runs in: a vLLM too old for the ``custom_class`` proposer
interface is refused; a newer one than tested gets one warning (vLLM marks the interface
experimental). The store is opened by ``sufdec.drafters.serving``, as for any engine.
"""

from __future__ import annotations

import logging

log = logging.getLogger("vllm.sufdec")

TESTED = (0, 32)  # vLLM releases this adapter was tested on: 0.32.x
OLDEST = (0, 32)  # custom_class proposers with propose(sampled, num_tokens_no_spec, token_ids_cpu)


class IncompatibleVllmError(RuntimeError):
    """This vLLM does not have the interface the integration relies on."""


def check_vllm_version(version: str) -> None:
    """Refuse a vLLM older than ``OLDEST``; warn once about one newer than ``TESTED``."""
    try:
        major_minor = tuple(int(p) for p in version.split(".")[:2])
    except ValueError:
        log.warning("sufdec: cannot read the vLLM version %r; tested with %d.%d", version, *TESTED)
        return
    if major_minor < OLDEST:
        raise IncompatibleVllmError(
            f"sufdec needs vLLM >= {OLDEST[0]}.{OLDEST[1]} (its custom_class proposer interface); found {version}"
        )
    if major_minor > TESTED:
        log.warning(
            "sufdec: tested with vLLM %d.%d, running on %s: vLLM marks its custom_class "
            "proposer interface experimental; if drafting fails, pin vllm==%d.%d.*",
            *TESTED,
            version,
            *TESTED,
        )
