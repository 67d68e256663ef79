#!/usr/bin/env bash
# The demo behind `make demo`: pull the default model, index the sample corpus (the model's
# own past answers to Spider questions), then generate the held-out questions with plain
# decoding and with speculation, and compare. Run from the repo root after `make setup`.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
OUT=.demo
rm -rf "$OUT" && mkdir -p "$OUT"
export SUFDEC_STORE="$PWD/$OUT/store"

echo "== 1. the default model"
$BIN/sufdec model pull
echo "== 2. index the sample corpus (157 past outputs)"
$BIN/sufdec index data/spider_demo/corpus.jsonl
$BIN/sufdec stats --prefix "SELECT" --depth 3
N=${DEMO_PROMPTS:-24}
head -n "$N" data/spider_demo/prompts.jsonl > "$OUT/prompts.jsonl"
echo "== 3. generate $N held-out prompts with plain decoding and with speculation, interleaved (greedy, float32, CPU)"
# what `sufdec generate --prompts FILE --spec off|tree --no-learn --json` does, one prompt at a
# time with both methods, so that the machine's load weighs on both alike
$BIN/python scripts/demo_generate.py "$OUT/prompts.jsonl" "$OUT" 128
echo "== 4. compare"
$BIN/python scripts/demo_report.py "$OUT/off.jsonl" "$OUT/tree.jsonl"
