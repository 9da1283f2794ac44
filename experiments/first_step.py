"""Seconds from launch to the first logged result of each command's default run.

Usage: python3 experiments/first_step.py [COMMAND-LINE ...]   (default: the five training
commands, train-gan twice: digits and ring8)
Each command runs twice: once to warm the compilation cache, then timed. The clock stops at
the first `train` record (or the `summary`, for a command that logs no training steps) on
stdout; the process is then stopped. Run directories go to a temporary directory.
"""
import json
import shlex
import subprocess
import sys
import tempfile
import time

if any(a in ("-h", "--help") for a in sys.argv[1:]):
    print(__doc__.strip())
    sys.exit(0)
commands = sys.argv[1:] or ["cnn-demo", "train-lstm", "compare-rnn", "grad-probe", "train-gan",
                            "train-gan --dataset ring8"]
with tempfile.TemporaryDirectory() as tmp:
    for line in commands:
        for attempt in ("warm-up", "timed"):
            errf = open(f"{tmp}/stderr", "w+")   # a file, not a pipe: it cannot fill and block the run
            t = time.perf_counter()
            p = subprocess.Popen([sys.executable, "-m", "dlx", *shlex.split(line), "--json", "--force",
                                  "--out", f"{tmp}/run"], stdout=subprocess.PIPE, stderr=errf, text=True)
            first = None
            for rec in p.stdout:
                if json.loads(rec)["event"] in ("train", "summary"):
                    first = time.perf_counter() - t
                    break
            p.kill()
            p.wait()
            errf.seek(0)
            err = errf.read()
            errf.close()
        # a command that failed says why (its last stderr line), not only "no record"
        what = f"{first:.2f} s" if first is not None else "no record: " + (err.strip().splitlines() or ["?"])[-1]
        print(f"{line:30s} first result after {what}", flush=True)
