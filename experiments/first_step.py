"""Seconds from launch to the first logged result of each command's default run.

Usage: python3 experiments/first_step.py [COMMAND-LINE ...]   (default: the five commands)
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

commands = sys.argv[1:] or ["cnn-demo", "train-lstm", "compare-rnn", "grad-probe", "train-gan",
                            "train-gan --dataset ring8"]
with tempfile.TemporaryDirectory() as tmp:
    for line in commands:
        for attempt in ("warm-up", "timed"):
            t = time.perf_counter()
            p = subprocess.Popen([sys.executable, "-m", "dlx", *shlex.split(line), "--json", "--force",
                                  "--out", f"{tmp}/run"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            first = None
            for rec in p.stdout:
                if json.loads(rec)["event"] in ("train", "summary"):
                    first = time.perf_counter() - t
                    break
            p.kill()
            p.wait()
        what = f"{first:.2f} s" if first is not None else "no record"
        print(f"{line:30s} first result after {what}", flush=True)
