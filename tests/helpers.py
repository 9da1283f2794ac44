"""Run dlx as a user would: in-process (fast, shares the compiled-program cache) or as a
real subprocess (for signals, pipes, start-up imports)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass


@dataclass
class DlxResult:
    code: int
    stdout: str
    stderr: str

    @property
    def records(self) -> list[dict]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]

    def event(self, name: str) -> list[dict]:
        return [r for r in self.records if r["event"] == name]

    @property
    def summary(self) -> dict:
        (s,) = self.event("summary")
        return s


def _run_dir(args) -> str | None:
    for flag in ("--out", "--resume"):
        if flag in args[:-1]:
            return args[args.index(flag) + 1]
    return None


def _listing(path) -> set[str]:
    return set(os.listdir(path)) if path and os.path.isdir(path) else set()


def dlx(*args: str) -> DlxResult:
    """`dlx ARGS` in this process; returns exit code and captured output. Every file the
    call adds at a run directory's top level must be one --force knows to delete."""
    from dlx.cli import main
    from dlx.rundir import LOCK, is_run_file

    run_dir = _run_dir(args)
    before, runs_before = _listing(run_dir), _listing("runs")   # runs/: where a run without --out goes

    out, err = io.StringIO(), io.StringIO()
    code = 0
    # dlx sets XLA_FLAGS for the backend it is about to start (the host device
    # count for --devices N); here the backend already runs, so restore them: they must not leak into
    # the subprocesses later tests start.
    flags = os.environ.get("XLA_FLAGS")
    with redirect_stdout(out), redirect_stderr(err):
        try:
            main(list(args))
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        finally:
            if flags is None:
                os.environ.pop("XLA_FLAGS", None)
            else:
                os.environ["XLA_FLAGS"] = flags
    added = {run_dir: _listing(run_dir) - before} if run_dir else {
        os.path.join("runs", d): _listing(os.path.join("runs", d)) for d in _listing("runs") - runs_before}
    for path, names in added.items():
        unknown = sorted(n for n in names if n != LOCK and not is_run_file(n))
        assert not unknown, f"dlx wrote {unknown} to {path}: add them to dlx.rundir.RUN_FILES"
    return DlxResult(code, out.getvalue(), err.getvalue())


def dlx_subprocess(*args: str, cwd=None, env=None, timeout=300, **kw) -> DlxResult:
    e = {**os.environ, **(env or {})}
    p = subprocess.run([sys.executable, "-m", "dlx", *args], cwd=cwd, env=e, capture_output=True, text=True,
                       timeout=timeout, **kw)
    return DlxResult(p.returncode, p.stdout, p.stderr)


def strip_timing(d):
    """A summary without the fields that measure time (they differ run to run), and with
    only the claim of a verdict read from timings."""
    timing = {"wall_s", "compile_s", "ms_per_step", "examples_per_s", "run", "elapsed_s", "peak_bytes",
              "step_ms", "step_ms_rounds"}
    if isinstance(d, dict):
        if d.get("claim") == "GRU steps faster than LSTM":
            return {"claim": d["claim"]}
        return {k: strip_timing(v) for k, v in d.items() if k not in timing}
    if isinstance(d, list):
        return [strip_timing(v) for v in d]
    return d


def assert_same_numbers(a, b, why: str = ""):
    """Two summaries (after strip_timing) hold the same numbers: bit for bit on the CPU; to
    float32 rounding on other backends, where two programs that compute the same function
    (a resumed process's, a sweep's) may be fused and tuned apart (README: an H200 gave 2e-7
    relative for a resumed cnn-demo, 4e-7 on an H100 for a sweep's GRU)."""
    import jax
    import pytest

    if jax.default_backend() == "cpu":
        assert a == b, why
        return
    na, nb = [], []
    assert _numbers_out(a, na) == _numbers_out(b, nb), why
    assert na == pytest.approx(nb, rel=1e-5), why


def _numbers_out(tree, numbers: list):
    """A JSON tree -> the same tree with its floats replaced by 0.0; the floats are appended
    to `numbers` in key order."""
    if isinstance(tree, dict):
        return {k: _numbers_out(tree[k], numbers) for k in sorted(tree)}
    if isinstance(tree, list):
        return [_numbers_out(v, numbers) for v in tree]
    if isinstance(tree, float):   # counts (params, steps) stay in the tree: compared exactly
        numbers.append(tree)
        return 0.0
    return tree
