"""Small-sample statistics for results over seeds: spread and paired differences.

With 3 to 8 seeds the normal approximation is too optimistic; intervals use Student's t
with n - 1 degrees of freedom (n = 3: the 95% interval is mean ± 4.30 standard errors,
not ± 1.96). Standard deviations are sample ones (ddof = 1). Plain floats in and out, so
the records they go into are JSON as they are; undefined quantities (the spread of one
value) are None, which JSON writes as null.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

LEVEL = 0.95


def sig(x: float, digits: int = 4) -> float:
    """Round to significant digits, not decimals: a tiny step on a GPU uses ~1e-6 of its
    peak, which four decimals reported as 0 (an H100 run of the suite saw it)."""
    return float(f"{x:.{digits}g}")


def _t_quantile(df: int, level: float = LEVEL) -> float:
    # scipy.special, not scipy.stats: the same Student's t functions (scipy.stats.t calls
    # them; equal bit for bit), imported in 0.3 s instead of 1.2 s at the end of every run
    # over seeds. Imported on use.
    from scipy.special import stdtrit

    return float(stdtrit(df, 0.5 + level / 2))


def _clean(values: Iterable[float], what: str) -> list[float]:
    out = [float(v) for v in values]
    if not out:
        raise ValueError(f"{what}: no values")
    return out


def mean(values: Sequence[float]) -> float:
    v = _clean(values, "mean")
    return math.fsum(v) / len(v)


def std(values: Sequence[float]) -> float | None:
    """Sample standard deviation (n - 1 in the denominator); None for a single value."""
    v = _clean(values, "std")
    if len(v) < 2:
        return None
    m = mean(v)
    return math.sqrt(math.fsum((x - m) ** 2 for x in v) / (len(v) - 1))


def interval(values: Sequence[float], level: float = LEVEL) -> list[float] | None:
    """Two-sided t interval for the mean, [low, high]; None for a single value."""
    v = _clean(values, "interval")
    s = std(v)
    if s is None:
        return None
    m = mean(v)
    half = _t_quantile(len(v) - 1, level) * s / math.sqrt(len(v))
    return [m - half, m + half]


def spread(values: Sequence[float], level: float = LEVEL) -> dict:
    """{n, mean, std, ci95, min, max, values}: how a result varies over seeds.

    Non-finite values (a diverged seed) are kept in `values`, but then mean/std/ci95 are
    computed from them as they are (NaN/inf), so a diverged seed is never hidden."""
    v = _clean(values, "spread")
    return {"n": len(v), "mean": mean(v), "std": std(v), "ci95": interval(v, level),
            "min": min(v), "max": max(v), "values": v}


def paired(a: Sequence[float], b: Sequence[float], level: float = LEVEL) -> dict:
    """Paired differences a_i - b_i (seed i of a against seed i of b: same data order and
    initial key), their spread, and the two-sided p-value of the paired t-test."""
    a, b = _clean(a, "paired"), _clean(b, "paired")
    if len(a) != len(b):
        raise ValueError(f"paired: {len(a)} values against {len(b)}")
    d = [x - y for x, y in zip(a, b)]
    res = spread(d, level)
    res["p"] = _p_value(d)
    return res


def _p_value(d: list[float]) -> float | None:
    s = std(d)
    if s is None or not all(math.isfinite(x) for x in d):
        return None
    m = mean(d)
    if s == 0:
        return 1.0 if m == 0 else 0.0
    from scipy.special import stdtr  # Student's t CDF: sf(x) = cdf(-x)

    stat = m / (s / math.sqrt(len(d)))
    return float(2 * stdtr(len(d) - 1, -abs(stat)))


def direction(diff: dict) -> int | None:
    """+1 when the interval of a paired difference lies above 0, -1 below, 0 when it holds
    0, None when it is undefined (one seed, or a non-finite value)."""
    ci = diff.get("ci95")
    if ci is None or not all(math.isfinite(x) for x in ci):
        return None
    if ci[0] > 0:
        return 1
    if ci[1] < 0:
        return -1
    return 0
