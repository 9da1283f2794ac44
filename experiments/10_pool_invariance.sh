#!/usr/bin/env bash
# Question: does pooling make a CNN's predictions invariant to small moves and turns of its
#           input (the notes: pooling gives "invariance to position and rotation")?
# Command:  dlx cnn-demo --dataset digits --pool max|none --seed s --no-mlp-baseline --json
#           for s in 0..SEEDS-1 (default SEEDS=5, 1000 steps each: the cnn-demo default);
#           seed s of both poolings sees the same init and batches, so differences are paired.
#           Invariance: the fraction of test images whose predicted class stays when the
#           image moves 1 or 2 pixels (mean of 4 directions, zero fill) or turns 15 degrees.
#           QUICK=1: 20 steps, tiny channels, 1 seed.
# Runtime:  ~15 s per run on a quiet 2-core CPU: ~2.5 min full (10 runs).
# Answer last run: see README "The notes' claims" (filled in from this script's verdicts).
source "$(dirname "$0")/lib.sh"

if quick; then
  SEEDS=${SEEDS:-1}; budget=(--steps 20 --channels 4,8 --hidden 16 --eval-every 20 --log-every 20)
else
  SEEDS=${SEEDS:-5}; budget=()
fi

for s in $(seq 0 $((SEEDS - 1))); do
  for pool in max none; do
    run_dlx "$pool-seed$s" pool="\"$pool\"" seed="$s" -- \
      cnn-demo --dataset digits --pool "$pool" --seed "$s" --no-mlp-baseline \
      --feature-maps 0 "${budget[@]+"${budget[@]}"}"
  done
done

analyse <<'PY'
from expt import paired, paired_str, pm, summaries, table, verdict

runs = {(r["pool"], r["seed"]): r for r in summaries()}
seeds = sorted({s for _, s in runs})
keys = ["test_accuracy", "shift_agreement_1px", "shift_agreement_2px", "rotation_agreement_15deg"]
table("digits: test accuracy, and how often a prediction survives a move or a turn of the image",
      ["seed", "pool"] + keys, [[s, p] + [runs[(p, s)][k] for k in keys] for s in seeds for p in ("max", "none")])
for k, what in (("shift_agreement_1px", "a 1-pixel move"), ("shift_agreement_2px", "a 2-pixel move"),
                ("rotation_agreement_15deg", "a 15-degree turn")):
    v = {p: [runs[(p, s)][k] for s in seeds] for p in ("max", "none")}
    d = paired(v["max"], v["none"])
    verdict(f"max pooling keeps more predictions than no pooling under {what}",
            None if d["sign"] == 0 else d["sign"] > 0,
            f"max {pm(v['max'])} vs none {pm(v['none'])}; paired max - none {paired_str(d)}")
PY
