"""The demo's generation step: every held-out prompt decoded plainly and with speculation.

    python scripts/demo_generate.py PROMPTS.jsonl OUT_DIR [MAX_NEW_TOKENS]

One session (the model loaded once, the store read, nothing learned), the two methods
interleaved prompt by prompt, alternating which goes first: a machine that gets busier or
quieter during the run weighs on both alike (run one after the other, a demo once printed
0.62x on a machine whose load rose between its plain and its speculative phase). A line per
prompt on stderr says how far it is; OUT_DIR/off.jsonl and OUT_DIR/tree.jsonl get one
`sufdec generate --json` object per prompt, for scripts/demo_report.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from sufdec.drafters.settings import DraftSettings
from sufdec.jsonl import read_objects
from sufdec.session import GenerationSession, SessionConfig

METHODS = {"off": DraftSettings(spec="off"), "tree": DraftSettings(spec="tree")}


def main(prompts_path: str, out_dir: str, max_new_tokens: str = "128") -> int:
    requests = [
        rec
        for _, rec in read_objects(
            Path(prompts_path), lambda r: "prompt" in r or "messages" in r, 'an object with "prompt" or "messages"'
        )
    ]
    out = Path(out_dir)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the demo prints its own progress, a line per prompt
    session = GenerationSession.open(
        SessionConfig(draft=METHODS["tree"], learn=False), say=lambda m: print(m, file=sys.stderr, flush=True)
    )
    files = {name: (out / f"{name}.jsonl").open("w", encoding="utf-8") for name in METHODS}
    try:
        for i, request in enumerate(requests, start=1):
            ids = session.encode(request)
            rates = {}
            order = list(METHODS) if i % 2 else list(reversed(METHODS))
            for name in order:
                config = session.generation_config(ids, max_new_tokens=int(max_new_tokens), draft=METHODS[name])
                result = session.generate(ids, config)
                summary = session.summary(result)
                files[name].write(json.dumps(summary) + "\n")
                decode_s = max(result.elapsed_s - result.prefill_s, 1e-9)
                rates[name] = (result.new_tokens / decode_s, result.mean_tokens_per_step)
            print(
                f"[{i}/{len(requests)}] plain {rates['off'][0]:.1f} tokens/s, speculative {rates['tree'][0]:.1f} "
                f"tokens/s ({rates['tree'][1]:.2f} tokens/step)",
                file=sys.stderr,
                flush=True,
            )
    finally:
        for f in files.values():
            f.close()
        session.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
