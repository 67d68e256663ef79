#!/usr/bin/env bash
# The README's "With vLLM" path, verbatim, as a new user meets it (issue 20 item 12): a fresh
# clone of this checkout's HEAD, a fresh venv, an empty model cache and store; the README's
# install block, its server block (in the background) and its request block are cut out of
# README.md by their markers and run unchanged. Passes when the server answers, the answer was
# drafted for by sufdec's proposer, and it is learned into the store.
#
#   bash scripts/check_readme_vllm.sh [WORKDIR]     # ~5-8 min on 2 cores, ~4 GB in WORKDIR
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
if [ -n "${1:-}" ]; then mkdir -p "$1" && WORK=$(cd "$1" && pwd); else WORK=$(mktemp -d); fi
rm -rf "$WORK/clone" && git clone -q "$REPO" "$WORK/clone"
cd "$WORK/clone"
block() {  # the bash block after the marker line <!-- readme-vllm:NAME -->
  awk -v tag="<!-- readme-vllm:$1 -->" '$0 == tag {f = 1; next} f && /^```bash/ {g = 1; next} g && /^```/ {exit} g' README.md
}
for b in install serve ask; do
  block "$b" > "$WORK/$b.sh"
  [ -s "$WORK/$b.sh" ] || { echo "README.md has no block after <!-- readme-vllm:$b -->" >&2; exit 1; }
done
export SUFDEC_CACHE_DIR="$WORK/cache"          # a new machine's empty model cache
unset SUFDEC_STORE SUFDEC_VLLM_CONFIG VIRTUAL_ENV
server=""
cleanup() { [ -z "$server" ] || kill -- -"$server" 2>/dev/null || true; }
trap cleanup EXIT

echo "== install (README block 1)"
t0=$SECONDS
. "$WORK/install.sh"
echo "   $((SECONDS - t0)) s"
echo "== serve (README block 2), in the background"
set -m
bash -c ". vllm-env/bin/activate && export SUFDEC_STORE='$SUFDEC_STORE' && . '$WORK/serve.sh'" \
  > "$WORK/server.log" 2>&1 &
server=$!
set +m
t0=$SECONDS
until curl -sf localhost:8000/health > /dev/null; do
  if ! kill -0 "$server" 2>/dev/null; then tail -40 "$WORK/server.log"; echo "the server died" >&2; exit 1; fi
  if (( SECONDS - t0 > 600 )); then tail -40 "$WORK/server.log"; echo "no server after 600 s" >&2; exit 1; fi
  sleep 2
done
echo "   up after $((SECONDS - t0)) s"
echo "== ask (README block 3)"
before=$(sufdec stats --sources --json | python -c 'import json,sys; print(json.load(sys.stdin)["sources"].get("vllm", {}).get("sequences", 0))')
. "$WORK/ask.sh" | tee "$WORK/ask.out"
grep -q '"choices"' "$WORK/ask.out" || { echo "no completion in the answer" >&2; exit 1; }
grep -q "sufdec" "$WORK/server.log" || { echo "the server log never names sufdec" >&2; exit 1; }
for _ in $(seq 30); do
  after=$(sufdec stats --sources --json | python -c 'import json,sys; print(json.load(sys.stdin)["sources"].get("vllm", {}).get("sequences", 0))')
  (( after > before )) && break
  sleep 1
done
(( after > before )) || { echo "the answer was not learned (vllm records $before -> $after)" >&2; exit 1; }
echo "ok: the README's vLLM path works verbatim (vllm records in the store: $before -> $after)"
