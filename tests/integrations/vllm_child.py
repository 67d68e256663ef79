"""One vLLM run for the end-to-end tests, in its own process (vLLM spawns, and each run
must be a fresh server): greedy float32 generation of the first N prompts of a JSONL file
through the chat template, plain or with sufdec's proposer; writes one JSON object.

    python vllm_child.py MODEL_DIR PROMPTS.jsonl N MAX_TOKENS plain|sufdec K OUT.json [CONCURRENCY]
(vLLM logs to stdout, so the result goes to a file.) CONCURRENCY: prompts submitted per
``chat`` call (default: all at once). The store is the one $SUFDEC_STORE names (the proposer
reads it, as in production).
"""

from __future__ import annotations

import json
import sys
import time


def main() -> None:
    model, prompts_file, n, max_tokens, mode, k, out_file = sys.argv[1:8]
    concurrency = int(sys.argv[8]) if len(sys.argv) > 8 else 0
    from vllm import LLM, SamplingParams

    extra = {}
    if mode == "sufdec":
        extra = {
            "speculative_config": {
                "method": "custom_class",
                "model": "sufdec.integrations.vllm.Proposer",
                "num_speculative_tokens": int(k),
            },
            "worker_cls": "sufdec.integrations.vllm.Worker",
        }
    t0 = time.perf_counter()
    llm = LLM(
        model=model, dtype="float32", enforce_eager=True, max_model_len=2048, seed=0, disable_log_stats=False, **extra
    )
    started = time.perf_counter()
    with open(prompts_file, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f][: int(n)]
    chats = [[{"role": "user", "content": r["prompt"]}] for r in rows]
    params = SamplingParams(temperature=0.0, max_tokens=int(max_tokens))
    step = concurrency or len(chats)
    outs = []
    for i in range(0, len(chats), step):
        outs += llm.chat(chats[i : i + step], params, use_tqdm=False)
    done = time.perf_counter()
    metrics = {
        m.name.removeprefix("vllm:spec_decode_"): m.value
        for m in llm.get_metrics()
        if m.name.startswith("vllm:spec_decode_num_") and hasattr(m, "value")
    }
    tokens = sum(len(o.outputs[0].token_ids) for o in outs)
    result = {
        "outputs": [list(o.outputs[0].token_ids) for o in outs],
        "finish": [o.outputs[0].finish_reason for o in outs],
        "tokens": tokens,
        "start_s": started - t0,
        "generate_s": done - started,
        "tokens_per_s": tokens / (done - started),
        "metrics": metrics,
        "concurrency": step,
    }
    with open(out_file, "w", encoding="utf-8") as f:
        json.dump(result, f)
    del llm  # shuts the engine down: the worker stores what finished in the last step


if __name__ == "__main__":
    main()
