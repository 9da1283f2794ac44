#!/usr/bin/env bash
# Question: is each dlx training step at least as fast as PyTorch's on the same shapes?
# Command:  TORCH_PY=~/.venvs/torch-ref/bin/python TORCH_REF=../shared/bench/torch_ref.py \
#           experiments/bench_vs_torch.sh [WORKLOAD ...] [-- extra shape options, e.g. --batch 16 --seq 64]
# Runtime:  about 1-2 minutes per workload and round on a 2-core CPU (ROUNDS=3 by default).
# Method:   dlx bench and the PyTorch reference run alternately, ROUNDS times each, in one
#           sitting; the ratio of the two medians is quoted (machines are shared and noisy).
# Answer last run: see BENCHMARKS.md (ratios with date and machine).
set -euo pipefail

: "${TORCH_PY:?set TORCH_PY to a python that has torch installed}"
: "${TORCH_REF:?set TORCH_REF to the path of torch_ref.py}"
# Checked before any timing: a missing venv or torch failed only after a whole dlx round.
"$TORCH_PY" -c 'import torch' 2>/dev/null || { echo "TORCH_PY=$TORCH_PY cannot import torch" >&2; exit 1; }
[ -f "$TORCH_REF" ] || { echo "TORCH_REF=$TORCH_REF: no such file" >&2; exit 1; }
ROUNDS=${ROUNDS:-3}
OUT=${OUT:-runs/bench_vs_torch-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"

workloads=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do workloads+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
extra=("$@")
[ ${#workloads[@]} -eq 0 ] && workloads=(lstm gru rnn dcgan cnn)

records="$OUT/records.jsonl"
: > "$records"
# The shape options a workload reads (dlx bench refuses the others, as torch_ref.py ignores
# them): `-- --batch 16 --seq 64` then applies to lstm, gru and rnn, and --batch to all.
reads() {
  case "$1" in
    lstm|gru|rnn) [[ "$2" != --width ]] ;;
    dcgan) [[ "$2" != --seq && "$2" != --hidden && "$2" != --embed && "$2" != --vocab ]] ;;
    *) [[ "$2" == --batch || "$2" == --steps || "$2" == --warmup ]] ;;
  esac
}
for w in "${workloads[@]}"; do
  opts=()
  set -- "${extra[@]+"${extra[@]}"}"
  while [ $# -gt 0 ]; do
    if reads "$w" "$1"; then opts+=("$1" "${2:-}"); fi
    shift; [ $# -gt 0 ] && shift
  done
  for r in $(seq "$ROUNDS"); do
    dlx bench "$w" "${opts[@]+"${opts[@]}"}" --scan 0 --json --quiet \
      | jq -c --arg w "$w" --arg r "$r" 'select(.event=="summary") | {impl:"dlx", workload:$w, round:($r|tonumber), ms:.workloads[$w].ms_per_step, device:.device, cores:.host.cores}' >> "$records"
    "$TORCH_PY" "$TORCH_REF" "$w" "${opts[@]+"${opts[@]}"}" \
      | jq -c --arg r "$r" '{impl:"torch", workload:.workload, round:($r|tonumber), ms:.ms_per_step}' >> "$records"
  done
done

python3 - "$records" <<'PY'
import json, statistics, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
first = next(r for r in recs if r["impl"] == "dlx")
print(f"on {first.get('device')} ({first.get('cores')} cores)")   # figures differ from machine to machine
print(f"{'workload':10} {'dlx ms':>9} {'torch ms':>9} {'torch/dlx':>10}")
for w in dict.fromkeys(r["workload"] for r in recs):
    d = statistics.median(r["ms"] for r in recs if r["workload"] == w and r["impl"] == "dlx")
    t = statistics.median(r["ms"] for r in recs if r["workload"] == w and r["impl"] == "torch")
    print(f"{w:10} {d:9.2f} {t:9.2f} {t / d:10.2f}")
    print(f"verdict: dlx {w} step {'at least as fast as' if d <= t else 'slower than'} PyTorch: "
          f"{d:.2f} ms vs {t:.2f} ms ({t / d:.2f}x)")
PY
