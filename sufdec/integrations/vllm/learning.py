"""Learning from vLLM: which finished requests count (the drafting service stores them).

The worker learns of a request's end from ``SchedulerOutput.finished_req_ids``, which
names finished *and* aborted requests alike. ``ended_output`` tells them apart the way
vLLM's scheduler decides that a request stops (``vllm/v1/core/sched/utils.py``,
``check_stop``): its output reaches an EOS or stop token, ``max_tokens``, or the model's
length. Only those outputs are learned, cut where the scheduler cut them (a speculative
step can accept tokens past the stop; the runner keeps them, the user never sees them),
EOS included, as ``sufdec generate`` stores them. Requests aborted by the client and
those a stop *string* ended (vLLM's frontend aborts them) are not learned.

The drafting service stores them in a background thread (``learn_in_background``), so a
step never waits for the disk.
"""

from __future__ import annotations

from collections.abc import Sequence


def ended_output(
    output_ids: Sequence[int],
    *,
    eos_token_id: int | None,
    stop_token_ids: Sequence[int] | None,
    max_tokens: int | None,
    num_prompt_tokens: int,
    max_model_len: int,
) -> list[int] | None:
    """The output as the user received it if the request ended by itself, else None.

    Mirrors vLLM's ``check_stop`` token by token: the first EOS or stop token (kept), the
    ``max_tokens``-th token, or the token that fills the model's context ends it.
    ``eos_token_id`` is None when the request ignores EOS (vLLM leaves it unset then).
    """
    stops = set(stop_token_ids or ())
    for n, tok in enumerate(output_ids, start=1):
        if tok < 0:  # a placeholder the runner has not filled in (async scheduling)
            return None
        if tok == eos_token_id or tok in stops:
            return list(output_ids[:n])
        if num_prompt_tokens + n >= max_model_len or (max_tokens is not None and n >= max_tokens):
            return list(output_ids[:n])
    return None
