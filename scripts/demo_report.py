"""Compare two `sufdec generate --json` runs over the same prompts (plain vs speculative)."""

import json
import statistics
import sys


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def main(plain_path: str, spec_path: str) -> int:
    plain, spec = load(plain_path), load(spec_path)
    if len(plain) != len(spec):
        print(f"runs differ in length: {len(plain)} vs {len(spec)}")
        return 1
    same = sum(a["text"] == b["text"] for a, b in zip(plain, spec))
    t_plain = sum(r["elapsed_s"] - r["prefill_s"] for r in plain)
    t_spec = sum(r["elapsed_s"] - r["prefill_s"] for r in spec)
    tokens = sum(r["new_tokens"] for r in spec)
    steps = sum(r["steps"] for r in spec)
    ratios = [
        (a["elapsed_s"] - a["prefill_s"]) / max(b["elapsed_s"] - b["prefill_s"], 1e-9) for a, b in zip(plain, spec)
    ]
    print(f"prompts:                 {len(spec)}")
    print(f"identical outputs:       {same}/{len(spec)}")
    print(f"new tokens:              {tokens}")
    print(
        f"plain decoding:          {sum(r['new_tokens'] for r in plain) / t_plain:.1f} tokens/s (decode "
        f"time {t_plain:.1f} s)"
    )
    print(f"speculative decoding:    {tokens / t_spec:.1f} tokens/s (decode time {t_spec:.1f} s)")
    print(f"mean tokens per step:    {tokens / steps:.2f}")
    print(f"speedup (total time):    {t_plain / t_spec:.2f}x")
    print(f"speedup (median prompt): {statistics.median(ratios):.2f}x")
    return 0 if same == len(spec) else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
