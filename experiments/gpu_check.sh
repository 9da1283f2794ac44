#!/usr/bin/env bash
# Question: how fast are dlx's steps on a GPU against PyTorch's on the same GPU, and does the
#           test suite pass there?
# Command:  TORCH_REF=../shared/bench/torch_ref.py OUT=gpu-out experiments/gpu_check.sh
#           on a machine with an NVIDIA GPU, JAX's CUDA build and PyTorch with CUDA (no jq).
# Runtime:  about 8 minutes on an H100 (first compilations 12-42 s per workload), plus the
#           test suite (more than 226 s with 14 workers: 303 of the 305 tests of then had finished).
# Method:   dlx bench and torch_ref.py (through torch_ref_cuda.py) alternated, ROUNDS rounds of
#           50 timed steps after 10 warm-up steps, on the reference shapes and two others;
#           ratio = median torch ms / median dlx ms. Then the small-step scan, start-up with a
#           warm compilation cache, and the suite with the GPU as JAX's backend.
# Answer last run: BENCHMARKS.md, "GPU".
set -uo pipefail
: "${TORCH_REF:?set TORCH_REF to the path of torch_ref.py}"
OUT=${OUT:-runs/gpu_check-$(date +%Y%m%d-%H%M%S)}
ROUNDS=${ROUNDS:-2}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false   # test workers share the GPU
B=$OUT/bench.jsonl; : > "$B"
ST=(--steps 50 --warmup 10)
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"

bench() {  # ROUND SHAPE-LABEL WORKLOAD-AND-SHAPE-ARGS...
  local r=$1 s=$2; shift 2
  dlx bench "$@" --scan 0 --json --quiet "${ST[@]}" | tee -a "$OUT/raw.jsonl" | python3 -c "
import json, sys
for line in sys.stdin:
    d = json.loads(line)
    if d.get('event') == 'summary':
        for w, v in d['workloads'].items():
            print(json.dumps({'impl': 'dlx', 'round': $r, 'shape': '$s', 'w': w, 'ms': v['ms_per_step'], 'compile_s': v['compile_s']}))" >> "$B"
  python3 "$HERE/torch_ref_cuda.py" "$TORCH_REF" "$@" "${ST[@]}" | python3 -c "
import json, sys
for line in sys.stdin:
    d = json.loads(line)
    print(json.dumps({'impl': 'torch', 'round': $r, 'shape': '$s', 'w': d['workload'], 'ms': d['ms_per_step']}))" >> "$B"
}
for r in $(seq "$ROUNDS"); do
  bench "$r" ref lstm gru rnn dcgan cnn
  bench "$r" b16h512 lstm gru --batch 16 --seq 64 --hidden 512
  bench "$r" b32w32 dcgan --batch 32 --width 32
done
python3 - "$B" <<'PY' | tee "$OUT/ratios.txt"
import json, statistics, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
for key in dict.fromkeys((r["shape"], r["w"]) for r in recs):
    d = [r["ms"] for r in recs if (r["shape"], r["w"]) == key and r["impl"] == "dlx"]
    t = [r["ms"] for r in recs if (r["shape"], r["w"]) == key and r["impl"] == "torch"]
    if d and t:
        md, mt = statistics.median(d), statistics.median(t)
        print(f"{key[0]:8} {key[1]:6} dlx {md:8.3f} ms  torch {mt:8.3f} ms  torch/dlx {mt / md:5.2f}")
PY
dlx bench ring8 adding --scan 100 --steps 200 --warmup 20 --json --quiet | tail -1 > "$OUT/bench_small.json"
python3 "$HERE/first_step.py" cnn-demo train-lstm | tee "$OUT/startup.txt"
JAX_PLATFORMS=cuda python3 -m pytest -q -n "${WORKERS:-14}" -p no:cacheprovider 2>&1 | tee "$OUT/tests.log" | tail -30
