#!/usr/bin/env bash
# Question: do same and valid padding give the output sizes the formula says?
#           out = floor((n + p - k) / s) + 1, p = 0 (valid) or k - 1 (same, so out = ceil(n / s));
#           pooling (window = stride = 2) in ceil mode: out = ceil(n / 2). Checked here by an
#           independent computation from the input size, not only by dlx's own formula_ok.
# Command:  dlx cnn-demo --shapes-only --dataset digits|mnist1d --kernel K --stride S --padding P --json
#           over K in 1,3,5,7, S in 1,2, P in same,valid (32 calls; QUICK=1: 3 calls).
# Runtime:  ~3-4 s per call on a quiet 2-core CPU (JAX start-up; no training): ~2 min full
#           (20 min on the loaded shared 2-core machine, 2026-11-25).
# Answer last run (2026-11-25, full grid of 32): supported. 27 of 27 fitting configurations
#           match the formula at every conv and pool layer (e.g. mnist1d k7 s2 valid:
#           40 -> 17 -> 9 -> 2 -> 1); the 5 digits configurations dlx rejects (exit 2) are
#           exactly those where the formula leaves conv2's input shorter than its kernel
#           (e.g. k3 s2 valid: 8 -> 3 -> 2 < 3); same padding gave ceil(n/s) in 16 of 16.
source "$(dirname "$0")/lib.sh"

if quick; then
  grid=("digits 3 1 same" "digits 3 1 valid" "mnist1d 5 2 valid")
else
  grid=()
  for d in digits mnist1d; do for k in 1 3 5 7; do for s in 1 2; do for p in same valid; do
    grid+=("$d $k $s $p")
  done; done; done; done
fi

for g in "${grid[@]}"; do
  read -r d k s p <<< "$g"
  # A combination that shrinks a layer below its kernel exits 2 ("does not fit"): recorded.
  run_dlx "$d-k$k-s$s-$p" --may-fail dataset="\"$d\"" kernel="$k" stride="$s" padding="\"$p\"" -- \
    cnn-demo --shapes-only --dataset "$d" --kernel "$k" --stride "$s" --padding "$p"
done

analyse <<'PY'
import math
from expt import records, table, verdict

INPUT = {"digits": 8, "mnist1d": 40}

def expected(n, k, s, padding):
    """conv -> pool(2) -> conv -> pool(2) output sizes along one spatial axis; None where a conv
    would not fit (its padded input is shorter than its kernel)."""
    out = []
    for _ in range(2):
        p = 0 if padding == "valid" else k - 1
        if n + p < k:
            return out + [None]
        n = (n + p - k) // s + 1
        out.append(n)
        n = math.ceil(n / 2)
        out.append(n)
    return out

rows, mism, fits_ok, same_ok, valid_ok = [], [], [], [], []
by = {}
for r in records():
    if r["event"] not in ("summary", "error"):
        continue
    d, k, s, p = r["dataset"], r["kernel"], r["stride"], r["padding"]
    want = expected(INPUT[d], k, s, p)
    fits = None not in want
    if r["event"] == "error":
        rows.append([d, k, s, p, "does not fit (exit %d)" % r["exit_code"], "x".join(map(str, want[:-1])) + "x(too small)", "—"])
        # Right only as a refusal (exit 2) of a configuration the formula says cannot fit;
        # any other failure is a failure.
        fits_ok.append(not fits and r["exit_code"] == 2)
        continue
    got = [l["shape"][0] for l in r["layers"] if l["layer"].startswith(("conv", "maxpool", "avgpool"))]
    dlx_ok = all(l["formula_ok"] for l in r["layers"] if "formula_ok" in l)
    ok = got == want
    fits_ok.append(fits)
    if not ok:
        mism.append(f"{d} k{k} s{s} {p}: dlx {got} vs formula {want}")
    conv1 = got[0]
    by[(d, k, s, p)] = conv1
    rows.append([d, k, s, p, "x".join(map(str, got)), "x".join(map(str, want)), ok and dlx_ok])
    if p == "same":
        same_ok.append(conv1 == math.ceil(INPUT[d] / s))
    else:
        valid_ok.append(conv1 == (INPUT[d] - k) // s + 1)

table("conv1, pool1, conv2, pool2 output length (first spatial axis)",
      ["dataset", "k", "s", "padding", "dlx", "formula", "match"], rows)
n = len(rows)
rejected = sum(1 for r in rows if str(r[4]).startswith("does not fit"))
verdict("output sizes follow out = floor((n + p - k)/s) + 1 (pools: ceil(n/2))",
        None if n == 0 else (not mism and all(fits_ok)),
        f"{n} configurations: {n - rejected - len(mism)} match layer by layer, {rejected} rejected by dlx "
        f"(exit 2) exactly where the formula leaves a conv input shorter than its kernel"
        + (f"; mismatches: {'; '.join(mism)}" if mism else ""))
verdict("same padding keeps ceil(n/s) at conv1", None if not same_ok else all(same_ok),
        f"{sum(same_ok)} of {len(same_ok)} same-padded runs")
shrink = [f"{d} k={k}: {INPUT[d]}->{by[(d, k, 1, 'valid')]}" for (d, k, s, p) in by if s == 1 and p == "valid" and k > 1]
verdict("valid padding gives floor((n - k)/s) + 1 at conv1 (n - k + 1 at stride 1)", None if not valid_ok else all(valid_ok),
        f"{sum(valid_ok)} of {len(valid_ok)} valid-padded runs; stride 1: " + ", ".join(shrink))
PY
