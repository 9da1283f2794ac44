#!/usr/bin/env bash
# Question: do exploding gradients come from the weights rather than the activations, and
#           does clipping tame them (Pascanu et al. 2013)? The same 10-layer net, linear, ReLU,
#           tanh and sigmoid (so that the activation can be seen to matter, if it does), He init
#           multiplied by a growing scale: the gradient ratio at init, then SGD training without
#           and with global-norm clipping.
# Command:  dlx grad-probe --activation linear,relu,tanh,sigmoid --init he --init-scale 0.5,1,2,4 --depth 10
#             --train-steps $STEPS [--clip 1] --json  (STEPS=200). A diverged net makes the
#           call exit 1 (its summary is still written): the script records the exit code and
#           carries on. QUICK=1: depth 6, width 16, scales 1,4, 10 steps.
# Runtime:  ~50 s on the 2-core CPU with other jobs running (full: 16 nets, 2 calls).
# Answer last run (2026-11-27, full: depth 10, width 64, SGD lr 0.1, 200 steps): ratio at init
#           for scale x0.5 / 1 / 2 / 4: linear 0.047 / 27 / 1.4e4 / 7.1e6, ReLU 0.0023 / 1.2 / 648 /
#           3.3e5, tanh 0.040 / 1.7 / 18 / 293: the weights set it; but sigmoid 1.4e-7 / 3.3e-5 /
#           0.0026 / 0.058 never explodes (its slope is at most 1/4), so "the weights, not the
#           activation" is not supported: a saturating activation can hold the product down.
#           Without clipping 5 of 16 nets diverge within 3 steps (linear x1, x2, x4; ReLU x2,
#           x4; the call exits 1); with --clip 1 all 5 train above twice chance (accuracy
#           0.70-0.94), clipped on every step.
source "$(dirname "$0")/lib.sh"

if quick; then
  STEPS=10; SCALES=1,4; net=(--depth 6 --width 16 --batch-size 64 --eval-every 10 --log-every 10)
else
  STEPS=${STEPS:-200}; SCALES=${SCALES:-0.5,1,2,4}; net=(--depth 10 --width 64)
fi

for clip in 0 1; do
  args=(grad-probe --activation linear,relu,tanh,sigmoid --init he --init-scale "$SCALES" --train-steps "$STEPS" "${net[@]}")
  [ "$clip" != 0 ] && args+=(--clip "$clip")
  run_dlx "clip$clip" --may-fail clip="$clip" -- "${args[@]}"
done

analyse <<'PY'
from expt import records, summaries, table, verdict

S = {s["clip"]: s for s in summaries()}
codes = {r["clip"]: r["exit_code"] for r in records()}
key = lambda r: (r["activation"], r["init_scale"])
runs = {clip: {key(r): r for r in s["results"]} for clip, s in S.items()}
combos = sorted(runs[0], key=lambda k: (k[0], k[1]))

def outcome(r):
    if r is None:
        return "—"
    return f"diverged@{r.get('diverged_at_step')}" if "diverged" in r else f"acc {r['test_accuracy']:.3f}"

rows = [[a, sc, runs[0][(a, sc)]["initial"]["ratio"], runs[0][(a, sc)]["initial"]["verdict"],
         outcome(runs[0].get((a, sc))), outcome(runs.get(1, {}).get((a, sc))),
         runs.get(1, {}).get((a, sc), {}).get("clip_fraction")] for a, sc in combos]
table(f"depth-{S[0]['results'][0]['depth']} net, He init x scale (exit codes: no clip {codes.get(0)}, clip 1 {codes.get(1)})",
      ["activation", "scale", "ratio@0", "verdict@0", "no clip", "clip 1", "clipped steps"], rows)

for a in sorted({a for a, _ in combos}):
    rs = [runs[0][(a, sc)]["initial"]["ratio"] for aa, sc in combos if aa == a]
    scales = [sc for aa, sc in combos if aa == a]
    grows = all(y > x for x, y in zip(rs, rs[1:]))
    verdict(f"{a}: the gradient ratio at init grows with the weight scale alone",
            grows and runs[0][(a, scales[-1])]["initial"]["verdict"] == "exploding",
            ", ".join(f"x{sc:g} {r:.3g}" for sc, r in zip(scales, rs)))
big = max(sc for _, sc in combos)
lin, rel = runs[0][("linear", big)]["initial"]["verdict"], runs[0][("relu", big)]["initial"]["verdict"]
# Refuted if any activation keeps the gradient from exploding at the largest weights.
at_big = {a: runs[0][(a, big)]["initial"]["verdict"] for a in sorted({a for a, _ in combos})}
verdict("it is the weights, not the activation: every activation's net explodes at large weights",
        all(v == "exploding" for v in at_big.values()),
        f"at scale x{big:g}: " + ", ".join(f"{a} {v}" for a, v in at_big.items()))
if 1 in runs:
    # "Train" means above chance (digits: 10 classes), not merely "did not diverge".
    chance = 0.1
    bad = [k for k in combos if "diverged" in runs[0][k]]
    finite = [k for k in bad if "diverged" not in runs[1][k]]
    saved = [k for k in finite if runs[1][k]["test_accuracy"] > 2 * chance]
    ev = (f"{len(bad)} of {len(combos)} nets diverge without clipping ("
          + ", ".join(f"{a} x{sc:g}" for a, sc in bad) + f"); with --clip 1, {len(finite)} of them stay finite and "
          f"{len(saved)} train above twice chance ({2 * chance:g}): "
          + ", ".join(f"{a} x{sc:g} acc {runs[1][(a, sc)]['test_accuracy']:.3f}" for a, sc in finite))
    verdict("gradient clipping keeps the exploding nets from diverging", None if not bad else len(saved) == len(bad), ev)
PY
