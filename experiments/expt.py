"""Helpers for the experiments/ scripts: tag and collect dlx records, print a table and
verdict lines. The standard library only (scipy's t quantiles where installed)."""

from __future__ import annotations

import json
import math
import os
import statistics
import sys


def _value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def tag(src: str, dest: str, exp: str, label: str, rc: str, *pairs: str) -> None:
    """Append dlx's records from `src` to `dest`, each with exp, label, exit_code and tags.
    A run that printed nothing (it crashed before its first record) still leaves one
    `error` record, so every call is accounted for."""
    tags = {"exp": exp, "label": label, "exit_code": int(rc)}
    for p in pairs:
        k, _, v = p.partition("=")
        tags[k] = _value(v)
    lines = [line for line in open(src) if line.strip()]
    with open(dest, "a") as f:
        if not lines:
            f.write(json.dumps({"event": "error", "kind": "no output", "message": "dlx printed no record",
                                **tags}) + "\n")
        for line in lines:
            f.write(json.dumps({**tags, **json.loads(line)}) + "\n")


# ---- reading records -------------------------------------------------------------------

QUICK = os.environ.get("QUICK", "0") == "1"


def records(path: str | None = None) -> list[dict]:
    path = path or os.environ["RECORDS"]
    return [json.loads(line) for line in open(path) if line.strip()]


def summaries(path: str | None = None) -> list[dict]:
    """The `summary` record of every call, in call order."""
    return [r for r in records(path) if r.get("event") == "summary"]


def errors(path: str | None = None) -> list[dict]:
    return [r for r in records(path) if r.get("event") == "error"]


def get(d, dotted: str, default=None):
    """d["a"]["b"] for "a.b"; default where any part is missing."""
    for part in dotted.split("."):
        if not isinstance(d, dict) or part not in d:
            return default
        d = d[part]
    return d


# ---- numbers ----------------------------------------------------------------------------

def mean(xs):
    xs = [x for x in xs if x is not None and math.isfinite(x)]
    return statistics.fmean(xs) if xs else None


def std(xs):
    xs = [x for x in xs if x is not None and math.isfinite(x)]
    return statistics.stdev(xs) if len(xs) > 1 else None


# Two-sided 95% quantiles of Student's t (scipy.special.stdtrit(df, 0.975), rounded up at 3 decimals),
# for a python3 without scipy (the analysis runs under plain python3, dlx perhaps in a venv).
_T95 = {1: 12.707, 2: 4.303, 3: 3.183, 4: 2.777, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.307, 9: 2.263,
        10: 2.229, 11: 2.201, 12: 2.179, 13: 2.161, 14: 2.145, 15: 2.132, 16: 2.120, 17: 2.110,
        18: 2.101, 19: 2.094, 20: 2.086, 25: 2.060, 30: 2.043, 40: 2.022, 60: 2.001, 120: 1.980}


def t95(df: int) -> float:
    """Two-sided 95% quantile of Student's t with df degrees of freedom: scipy's where it is
    installed; else the table, at the nearest tabulated df at or BELOW df (a wider interval,
    never a narrower one)."""
    try:
        from scipy.special import stdtrit

        return float(stdtrit(df, 0.975))
    except ImportError:
        return _T95[max(k for k in _T95 if k <= df)]


def paired(a: list, b: list) -> dict:
    """Mean of a - b over paired seeds with its 95% t interval (None with one pair), and
    `sign`: +1 / -1 when the interval excludes 0, else 0."""
    d = [x - y for x, y in zip(a, b) if x is not None and y is not None]
    m, s = mean(d), std(d)
    ci = None if s is None else (m - t95(len(d) - 1) * s / math.sqrt(len(d)),
                                 m + t95(len(d) - 1) * s / math.sqrt(len(d)))
    sign = 0 if ci is None else (1 if ci[0] > 0 else -1 if ci[1] < 0 else 0)
    if ci is not None and s == 0 and m != 0:
        sign = 1 if m > 0 else -1
    return {"n": len(d), "mean": m, "ci95": ci, "sign": sign}


def paired_str(p: dict, fmt: str = "+.3f") -> str:
    if p["mean"] is None:
        return "n/a"
    ci = "" if p["ci95"] is None else f", 95% CI [{p['ci95'][0]:{fmt}}, {p['ci95'][1]:{fmt}}]"
    return f"{p['mean']:{fmt}}{ci} over {p['n']} seed(s)"


def pm(xs, fmt: str = ".3f") -> str:
    """'mean ± std (n=...)' of a list, for evidence strings."""
    m, s = mean(xs), std(xs)
    if m is None:
        return "n/a"
    return f"{m:{fmt}}" + ("" if s is None else f" ± {s:{fmt}}") + f" (n={len(xs)})"


def fmt(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
            return f"{v:.2e}"
        return f"{v:.4g}"
    return str(v)


# ---- output -------------------------------------------------------------------------------

def table(title: str, head: list[str], rows: list[list]) -> None:
    """A plain aligned table on stdout."""
    cells = [[fmt(c) for c in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(head)]
    print(f"\n{title}")
    print("  ".join(h.ljust(w) for h, w in zip(head, widths)))
    print("  ".join("-" * w for w in widths))
    for r in cells:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))
    print()


VERDICTS = {True: "supported", False: "not supported", None: "inconclusive"}


def verdict(claim: str, supported: bool | None, evidence: str) -> None:
    """One line: `verdict: <supported|not supported|inconclusive>: <claim> — <numbers>`.
    Under QUICK=1 the budget is too small to decide anything: every verdict is
    inconclusive, and says what the tiny run would have read."""
    if QUICK:
        evidence = f"QUICK=1 budget, would read '{VERDICTS[supported]}': {evidence}"
        supported = None
    print(f"verdict: {VERDICTS[supported]}: {claim} — {evidence}")


if __name__ == "__main__":
    if sys.argv[1] == "tag":
        tag(*sys.argv[2:])
    else:
        sys.exit(f"usage: expt.py tag SRC DEST EXP LABEL RC [key=value ...]; got {sys.argv[1:]}")
