#!/usr/bin/env bash
# Estimate vs measured footprint of `hangar run` (design §5, docs/estimate.md): for every fixture
# model and a >= 500 MB model made by `hangar make-model`, per argument set (-c 512/4096,
# -np 1/4), the plan of `hangar estimate --json` against the Pss the running worker reports in
# GET /props -> memory.measured.CPU (read after its warm-up decode; see
# tests/e2e/worker_footprint_test.cc). Prints a Markdown table; exits 1 when a row misses the
# rule: |estimate - measured| <= max(3 % of measured, 16 MiB).
#
#   bench/estimate_table.sh [HANGAR_BINARY]
#   env: HANGAR_FIXTURES (default /work/shared/fixtures), THREADS (-t for both, default 2),
#        CTXS ("512 4096"), SLOTS ("1 4"), BIG=0 to skip the made model.
set -euo pipefail

HANGAR=${1:-${HANGAR:-build/release/bin/hangar}}
FIXTURES=${HANGAR_FIXTURES:-/work/shared/fixtures}
THREADS=${THREADS:-2}
CTXS=${CTXS:-"512 4096"}
SLOTS=${SLOTS:-"1 4"}
BIG=${BIG:-1}

for tool in curl jq awk; do
  command -v "$tool" >/dev/null || { echo "estimate_table: needs $tool" >&2; exit 2; }
done
[[ -x "$HANGAR" ]] || { echo "estimate_table: no hangar binary at $HANGAR" >&2; exit 2; }

WORK=$(mktemp -d /tmp/hangar-estimate-table.XXXXXX)
WORKER_PID=""
cleanup() {
  if [[ -n "$WORKER_PID" ]]; then kill "$WORKER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

models=("$FIXTURES"/models/*.gguf)
if [[ "$BIG" == 1 ]]; then
  # Few layers but wide, F16, tied embeddings, the llama-spm vocabulary: about 533 MB.
  big="$WORK/wide-f16.gguf"
  "$HANGAR" make-model --arch llama --n-embd 2048 --n-layer 3 --n-head 16 --n-head-kv 16 \
    --n-ff 8192 --ctx 4096 --type f16 --tie-embeddings \
    --vocab-from "$FIXTURES/models/llama-spm-f16.gguf" --threads "$THREADS" -o "$big" >/dev/null
  models+=("$big")
fi

# Starts `hangar run` on an ephemeral port, waits for ready, prints memory.measured.CPU.
measure() {
  local model=$1 ctx=$2 np=$3 log="$WORK/worker.log" port="" i
  "$HANGAR" run -m "$model" -c "$ctx" -np "$np" -t "$THREADS" --port 0 >"$log" 2>&1 &
  WORKER_PID=$!
  for i in $(seq 1 600); do
    port=$(sed -n 's/.*worker: listening on [^ ]*:\([0-9][0-9]*\).*/\1/p' "$log" | head -n1)
    [[ -n "$port" ]] && break
    kill -0 "$WORKER_PID" 2>/dev/null || break
    sleep 0.1
  done
  local measured=""
  if [[ -n "$port" ]]; then
    for i in $(seq 1 3000); do
      if curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1; then
        measured=$(curl -sf "http://127.0.0.1:$port/props" | jq -r '.memory.measured.CPU')
        break
      fi
      kill -0 "$WORKER_PID" 2>/dev/null || break
      sleep 0.1
    done
  fi
  kill "$WORKER_PID" 2>/dev/null || true
  wait "$WORKER_PID" 2>/dev/null || true
  WORKER_PID=""
  if [[ -z "$measured" || "$measured" == null ]]; then
    echo "estimate_table: $model -c $ctx -np $np did not get ready:" >&2
    tail -n 5 "$log" >&2
    return 1
  fi
  echo "$measured"
}

echo "Machine: $(uname -m), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM; $(date -u +%Y-%m-%d); hangar $("$HANGAR" --version 2>/dev/null | head -n1); -t $THREADS"
echo
echo "| model | file MB | -c | -np | estimate MiB | measured MiB | diff MiB | diff % | bound MiB | ok |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"
fail=0
for model in "${models[@]}"; do
  size=$(stat -c %s "$model")
  for ctx in $CTXS; do
    for np in $SLOTS; do
      est=$("$HANGAR" estimate -m "$model" -c "$ctx" -np "$np" -t "$THREADS" --json |
        jq -r '[.devices[].total] | add')
      if ! meas=$(measure "$model" "$ctx" "$np"); then
        echo "| $(basename "$model") | $((size / 1000000)) | $ctx | $np | — | not ready | | | | FAIL |"
        fail=1
        continue
      fi
      awk -v name="$(basename "$model")" -v size="$size" -v ctx="$ctx" -v np="$np" \
        -v est="$est" -v meas="$meas" 'BEGIN {
          mib = 1048576; diff = est - meas; ad = diff < 0 ? -diff : diff
          bound = 0.03 * meas; if (bound < 16 * mib) bound = 16 * mib
          ok = ad <= bound ? "yes" : "NO"
          printf "| %s | %.1f | %d | %d | %.1f | %.1f | %+.1f | %+.2f | %.1f | %s |\n",
            name, size / 1e6, ctx, np, est / mib, meas / mib, diff / mib, 100 * diff / meas,
            bound / mib, ok
          exit ok == "yes" ? 0 : 3 }' || fail=1
    done
  done
done
exit "$fail"
