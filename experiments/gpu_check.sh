#!/usr/bin/env bash
# Question: how fast are dlx's steps on a GPU against PyTorch's on the same GPU, and does the
#           test suite pass there?
# Command:  TORCH_REF=../shared/bench/torch_ref.py OUT=gpu-out experiments/gpu_check.sh
#           on a machine with an NVIDIA GPU, JAX's CUDA build and PyTorch with CUDA (no jq).
# Runtime:  about 8 minutes on an H100 (first compilations 12-65 s per workload), plus the
#           test suite (527 s with 16 workers, 519 tests, 2026-11-28).
# Method:   dlx bench and torch_ref.py (through torch_ref_cuda.py) alternated, ROUNDS rounds of
#           50 timed steps after 10 warm-up steps, on the reference shapes and two others;
#           ratio = median torch ms / median dlx ms. Then the small-step scan, start-up with a
#           warm compilation cache, and the suite with the GPU as JAX's backend.
# Budget:   PHASES (default "info bench small startup tests"; also "hlo": the bench step's
#           compiled text, for checking its FLOP count) picks and orders the parts,
#           SHAPES (default "ref b16h512 b32w32") the bench's shapes (ref-W: workload W alone at
#           its reference shapes, so that a deadline cuts off one workload, not five);
#           DEADLINE (epoch seconds) stops each part in time for the next (a lease is short).
# Answer last run: BENCHMARKS.md, "GPU".
set -uo pipefail
: "${TORCH_REF:?set TORCH_REF to the path of torch_ref.py}"
OUT=${OUT:-runs/gpu_check-$(date +%Y%m%d-%H%M%S)}
ROUNDS=${ROUNDS:-2}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PHASES=${PHASES:-info bench small startup tests}
SHAPES=${SHAPES:-ref b16h512 b32w32}
mkdir -p "$OUT"
left() {  # seconds a part may run: up to the deadline, at most $1
  local cap=$1; [ -z "${DEADLINE:-}" ] && { echo "$cap"; return; }
  local l=$(( DEADLINE - $(date +%s) )); [ "$l" -lt "$cap" ] && cap=$l; [ "$cap" -lt 1 ] && cap=1
  echo "$cap"
}
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false   # test workers share the GPU
B=$OUT/bench.jsonl; : > "$B"
ST=(--steps 50 --warmup 10)

info() {  # the machine, the versions, and whether dlx saw an accelerator (no CPU-only flags)
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  python3 -m pip list 2>/dev/null | grep -iE '^(jax|jaxlib|jax-cuda[0-9]+-(pjrt|plugin)|flax|optax|orbax-checkpoint|torch) '
  for p in default cpu; do
    if [ $p = cpu ]; then e=(env JAX_PLATFORMS=cpu); else e=(env -u JAX_PLATFORMS); fi
    "${e[@]}" python3 -c "
import os
from dlx import runtime
runtime.setup_jax()
import jax
print('JAX_PLATFORMS=$p', 'cpu_only', runtime.cpu_only(), 'XLA_FLAGS', repr(os.environ.get('XLA_FLAGS', '')),
      'step options', runtime.step_compiler_options(), jax.devices())"
  done
}

bench() {  # ROUND SHAPE-LABEL WORKLOAD-AND-SHAPE-ARGS...
  local r=$1 s=$2; shift 2
  timeout "$(left 300)" dlx bench "$@" --scan 0 --json --quiet "${ST[@]}" | tee -a "$OUT/raw.jsonl" | python3 -c "
import json, sys
for line in sys.stdin:
    d = json.loads(line)
    if d.get('event') == 'summary':
        for w, v in d['workloads'].items():
            print(json.dumps({'impl': 'dlx', 'round': $r, 'shape': '$s', 'w': w, 'ms': v['ms_per_step'], 'compile_s': v['compile_s']}))" >> "$B"
  timeout "$(left 120)" python3 "$HERE/torch_ref_cuda.py" "$TORCH_REF" "$@" "${ST[@]}" | python3 -c "
import json, sys
for line in sys.stdin:
    d = json.loads(line)
    print(json.dumps({'impl': 'torch', 'round': $r, 'shape': '$s', 'w': d['workload'], 'ms': d['ms_per_step']}))" >> "$B"
}
benches() {
  for r in $(seq "$ROUNDS"); do
    for s in $SHAPES; do
      case $s in
        ref) bench "$r" ref lstm gru rnn dcgan cnn ;;
        ref-*) bench "$r" ref "${s#ref-}" ;;   # one workload at its reference shapes
        b16h512) bench "$r" b16h512 lstm gru --batch 16 --seq 64 --hidden 512 ;;
        b32w32) bench "$r" b32w32 dcgan --batch 32 --width 32 ;;
      esac
    done
  done
  python3 - "$B" <<'PY' | tee "$OUT/ratios.txt"
import json, statistics, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
for key in dict.fromkeys((r["shape"], r["w"]) for r in recs):
    d = [r["ms"] for r in recs if (r["shape"], r["w"]) == key and r["impl"] == "dlx"]
    t = [r["ms"] for r in recs if (r["shape"], r["w"]) == key and r["impl"] == "torch"]
    c = [r["compile_s"] for r in recs if (r["shape"], r["w"]) == key and r["impl"] == "dlx"]
    if d and t:
        md, mt = statistics.median(d), statistics.median(t)
        print(f"{key[0]:8} {key[1]:6} dlx {md:8.3f} ms  torch {mt:8.3f} ms  torch/dlx {mt / md:5.2f}"
              f"  compile {' '.join(f'{x:.1f}' for x in c)} s")
PY
}
for phase in $PHASES; do
  echo "== $phase $(date -u +%T)" >&2
  case $phase in
    info) info 2>&1 | tee "$OUT/info.txt" ;;
    bench) benches ;;
    small) timeout "$(left 120)" dlx bench ring8 adding --scan 100 --steps 200 --warmup 20 --json --quiet \
             | tail -1 | tee "$OUT/bench_small.json" ;;
    startup) timeout "$(left 120)" python3 "$HERE/first_step.py" cnn-demo train-lstm | tee "$OUT/startup.txt" ;;
    hlo) # the compiled step's text and its GFLOP figure at the FLOP test's shapes, for the count
         D=$(mktemp -d); XLA_FLAGS="--xla_dump_to=$D --xla_dump_hlo_as_text --xla_dump_hlo_module_re=.*step.*" \
           timeout "$(left 200)" dlx bench rnn --batch 16 --seq 64 --hidden 128 --steps 1 --warmup 0 --scan 0 \
           --json --quiet | tail -1 | tee "$OUT/hlo_bench.json"
         tar czf "$OUT/hlo.tgz" -C "$D" $(cd "$D" && find . -name '*after_optimizations.txt') ;;
    tests) # SIGINT at the deadline, so that pytest still prints what failed and how far it got
           JAX_PLATFORMS=cuda timeout -s INT -k 15 "$(left 600)" python3 -m pytest -q -n "${WORKERS:-14}" -p no:cacheprovider \
             --durations=15 2>&1 | tee "$OUT/tests.log" | tail -60 ;;
    *) echo "unknown phase: $phase" >&2; exit 2 ;;
  esac
done
