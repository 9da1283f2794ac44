#!/usr/bin/env bash
# Question: is max pooling better than average pooling (Scherer et al. 2010), on clean test
#           images and under Gaussian noise (the notes: max pooling "suppresses noise")?
# Command:  dlx cnn-demo --dataset digits --pool max|avg --noise $NOISE --seed s --no-mlp-baseline --json
#           for s in 0..SEEDS-1 (default SEEDS=5, NOISE=0.3, 1000 steps each: the cnn-demo default);
#           seed s of both poolings sees the same init, batches and noise, so differences are paired.
#           QUICK=1: 20 steps, tiny channels, 1 seed.
# Runtime:  ~15 s per run on a quiet 2-core CPU: ~2.5 min full (10 runs); 3 seeds took
#           6 min on the loaded shared machine (2026-11-26).
# Answer last run (2026-11-26, SEEDS=3, sigma 0.3): clean: max 0.981 ± 0.006 vs avg 0.955 ±
#           0.003, paired +0.025 [95% CI +0.013, +0.037]: supported. Under noise: max 0.748 vs
#           avg 0.741, paired +0.007 [-0.031, +0.046]: inconclusive; accuracy lost to noise
#           max 0.232 vs avg 0.214: max does NOT visibly suppress noise (inconclusive, leaning
#           the other way).
source "$(dirname "$0")/lib.sh"

NOISE=${NOISE:-0.3}
if quick; then
  SEEDS=${SEEDS:-1}; budget=(--steps 20 --channels 4,8 --hidden 16 --eval-every 20 --log-every 20)
else
  SEEDS=${SEEDS:-5}; budget=()
fi

for s in $(seq 0 $((SEEDS - 1))); do
  for pool in max avg; do
    run_dlx "$pool-seed$s" pool="\"$pool\"" seed="$s" -- \
      cnn-demo --dataset digits --pool "$pool" --noise "$NOISE" --seed "$s" --no-mlp-baseline \
      --feature-maps 0 "${budget[@]+"${budget[@]}"}"
  done
done

analyse <<'PY'
from expt import paired, paired_str, pm, summaries, table, verdict

runs = {(r["pool"], r["seed"]): r for r in summaries()}
seeds = sorted({s for _, s in runs})
rows = [[s] + [runs[(p, s)][k] for p in ("max", "avg") for k in ("test_accuracy", "noisy_accuracy")] for s in seeds]
noise = runs[("max", seeds[0])]["noise"]
table(f"digits test accuracy, clean and with N(0, {noise}^2) noise",
      ["seed", "max clean", "max noisy", "avg clean", "avg noisy"], rows)

acc = {(p, k): [runs[(p, s)][k] for s in seeds] for p in ("max", "avg") for k in ("test_accuracy", "noisy_accuracy")}
clean = paired(acc[("max", "test_accuracy")], acc[("avg", "test_accuracy")])
verdict("max pooling beats average pooling on clean digits (Scherer et al. 2010)",
        None if clean["sign"] == 0 else clean["sign"] > 0,
        f"max {pm(acc[('max', 'test_accuracy')])} vs avg {pm(acc[('avg', 'test_accuracy')])}; "
        f"paired max - avg {paired_str(clean)}")
noisy = paired(acc[("max", "noisy_accuracy")], acc[("avg", "noisy_accuracy")])
verdict(f"max pooling is more accurate than average pooling under noise sigma={noise}",
        None if noisy["sign"] == 0 else noisy["sign"] > 0,
        f"max {pm(acc[('max', 'noisy_accuracy')])} vs avg {pm(acc[('avg', 'noisy_accuracy')])}; "
        f"paired max - avg {paired_str(noisy)}")
drop = {p: [c - n for c, n in zip(acc[(p, "test_accuracy")], acc[(p, "noisy_accuracy")])] for p in ("max", "avg")}
d = paired(drop["avg"], drop["max"])
verdict("max pooling suppresses noise: it loses less accuracy to noise than average pooling",
        None if d["sign"] == 0 else d["sign"] > 0,
        f"accuracy lost to noise: max {pm(drop['max'])}, avg {pm(drop['avg'])}; paired avg - max {paired_str(d)}")
PY
