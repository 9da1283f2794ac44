# Shared by every experiments/NN_*.sh script (sourced, not run).
#
#   run_dlx LABEL [--may-fail] [key=value ...] -- dlx-arguments...
#       runs `dlx ARGS --json --quiet --out $OUT/<script>/LABEL --force` and appends every
#       record it prints to $RECORDS, each tagged with exp, label, exit_code and the
#       key=value pairs (numbers stay numbers). A non-zero exit stops the script unless
#       --may-fail is given (then the exit code is just recorded).
#   analyse <<'PY' ... PY
#       runs the heredoc in python3 with experiments/expt.py importable (records, table,
#       verdict helpers) and RECORDS, QUICK, SEEDS in the environment.
#
# Environment: QUICK=1 (tiny budget, for the test suite), SEEDS (how many seeds),
# OUT (records go to $OUT/<script>.jsonl; default runs/experiments).
set -euo pipefail

EXP_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
EXP=$(basename "$0" .sh)
QUICK=${QUICK:-0}
OUT=${OUT:-runs/experiments}
# A seed loop over no seeds ended in the analysis's traceback (an empty list indexed).
if [ -n "${SEEDS:-}" ] && ! [[ "$SEEDS" =~ ^[1-9][0-9]*$ ]]; then
  echo "SEEDS must be a positive integer, got '$SEEDS'" >&2; exit 2
fi
mkdir -p "$OUT/$EXP"
RECORDS="$OUT/$EXP.jsonl"
: > "$RECORDS"
export QUICK RECORDS EXP

quick() { [ "$QUICK" = "1" ]; }

# `dlx` as installed, or the module from the interpreter that has dlx.
if command -v dlx > /dev/null 2>&1; then _dlx() { dlx "$@"; }; else _dlx() { python3 -m dlx "$@"; }; fi

run_dlx() {
  local label=$1 may_fail=0 tags=() rc=0 tmp
  shift
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do
    if [ "$1" = "--may-fail" ]; then may_fail=1; else tags+=("$1"); fi
    shift
  done
  shift  # the --
  tmp=$(mktemp)
  echo "[$EXP] $label: dlx $*" >&2
  _dlx "$@" --json --quiet --out "$OUT/$EXP/$label" --force > "$tmp" || rc=$?
  python3 "$EXP_DIR/expt.py" tag "$tmp" "$RECORDS" "$EXP" "$label" "$rc" "${tags[@]+"${tags[@]}"}"
  rm -f "$tmp"
  if [ "$rc" -ne 0 ] && [ "$may_fail" -eq 0 ]; then
    echo "[$EXP] $label failed with exit code $rc (records in $RECORDS)" >&2
    return "$rc"
  fi
  return 0
}

analyse() { PYTHONPATH="$EXP_DIR${PYTHONPATH:+:$PYTHONPATH}" python3 -; }
