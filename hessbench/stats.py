"""Fits, confidence bounds and tests, in float64 (numpy, scipy.stats).

Used by the claims engine's expectation vocabulary (``linear_fit``,
``confidence_bound``, ``proportion_greater``) and by the experiments that report a
fitted slope, so that a slope in a claim file and a slope in ``report.json`` come
from the same formula.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

__all__ = ["LinearFit", "linear_fit", "MeanBound", "mean_confidence_bound",
           "ProportionTest", "two_proportion_ztest"]


@dataclass(frozen=True)
class LinearFit:
    """Least-squares line y = slope * x + intercept over ``n`` points with x in [x_min, x_max].

    ``r2 = 1 - SS_res / SS_tot``; when y is constant (SS_tot = 0) the line fits
    exactly and ``r2`` is 1.
    """

    slope: float
    intercept: float
    r2: float
    n: int
    x_min: float
    x_max: float
    y_min: float
    y_max: float


def linear_fit(x: Sequence[float], y: Sequence[float], *, min_points: int = 3) -> LinearFit:
    """Ordinary least squares of y on x (centred closed form, float64).

    slope = sum((x - xbar)(y - ybar)) / sum((x - xbar)^2), intercept = ybar - slope xbar.
    Needs at least ``min_points`` points (at least 2) and 2 distinct x values. The default
    3 is the expectation vocabulary's rule: with 2 points R^2 is always 1, so a fit that is
    to be judged by its R^2 needs 3; a slope that is only reported may take
    ``min_points=2``.
    """
    if min_points < 2:
        raise ValueError(f"min_points must be >= 2 (a line needs two points), got {min_points}")
    xa = np.asarray(x, dtype=np.float64).ravel()
    ya = np.asarray(y, dtype=np.float64).ravel()
    if xa.shape != ya.shape:
        raise ValueError(f"x and y differ in length ({xa.size} vs {ya.size})")
    if xa.size < min_points:
        raise ValueError(f"a linear fit needs at least {min_points} points, got {xa.size}")
    if not (np.all(np.isfinite(xa)) and np.all(np.isfinite(ya))):
        raise ValueError("x or y contains NaN or infinity")
    xc = xa - xa.mean()
    sxx = float(xc @ xc)
    if sxx == 0.0:
        raise ValueError(f"all x values are equal ({xa[0]:g}); the slope is undefined")
    slope = float(xc @ (ya - ya.mean())) / sxx
    intercept = float(ya.mean() - slope * xa.mean())
    resid = ya - (slope * xa + intercept)
    ss_res = float(resid @ resid)
    ss_tot = float((ya - ya.mean()) @ (ya - ya.mean()))
    r2 = 1.0 if ss_tot == 0.0 else 1.0 - ss_res / ss_tot
    return LinearFit(slope=slope, intercept=intercept, r2=r2, n=int(xa.size),
                     x_min=float(xa.min()), x_max=float(xa.max()),
                     y_min=float(ya.min()), y_max=float(ya.max()))


@dataclass(frozen=True)
class MeanBound:
    """One-sided Student-t confidence bound of a mean: mean +- t_{level, n-1} * s / sqrt(n)."""

    mean: float
    bound: float
    std: float
    n: int
    level: float
    side: str  # "upper" or "lower"


def mean_confidence_bound(samples: Sequence[float], level: float, side: str) -> MeanBound:
    """One-sided ``level`` confidence bound of the mean of i.i.d. ``samples``.

    upper = xbar + t_{level}(n-1) s / sqrt(n), lower = xbar - t_{level}(n-1) s / sqrt(n),
    with s the sample standard deviation (ddof = 1). Needs n >= 2.
    """
    if side not in ("upper", "lower"):
        raise ValueError(f"side must be 'upper' or 'lower', got {side!r}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    a = np.asarray(samples, dtype=np.float64).ravel()
    if a.size < 2:
        raise ValueError(f"a confidence bound needs at least 2 samples, got {a.size}; "
                         "add seeds or return an array metric")
    if not np.all(np.isfinite(a)):
        raise ValueError("samples contain NaN or infinity")
    mean, std = float(a.mean()), float(a.std(ddof=1))
    half = float(sps.t.ppf(level, df=a.size - 1)) * std / math.sqrt(a.size)
    bound = mean + half if side == "upper" else mean - half
    return MeanBound(mean=mean, bound=bound, std=std, n=int(a.size), level=level, side=side)


@dataclass(frozen=True)
class ProportionTest:
    """One-sided pooled two-proportion z-test of H1: p_a > p_b."""

    p_a: float
    p_b: float
    z: float
    p_value: float


def two_proportion_ztest(k_a: int, n_a: int, k_b: int, n_b: int) -> ProportionTest:
    """z = (p_a - p_b) / sqrt(p (1 - p) (1/n_a + 1/n_b)), p = (k_a + k_b) / (n_a + n_b);
    p-value = P(Z >= z) for standard normal Z.

    When the pooled proportion is 0 or 1 both samples agree exactly, there is no
    evidence for p_a > p_b: z = 0 and the p-value is reported as 1.
    """
    for label, k, n in (("a", k_a, n_a), ("b", k_b, n_b)):
        if n <= 0:
            raise ValueError(f"trial count n_{label} must be positive, got {n}")
        if not 0 <= k <= n:
            raise ValueError(f"success count {label} = {k} is outside [0, n_{label} = {n}]")
    p_a, p_b = k_a / n_a, k_b / n_b
    pooled = (k_a + k_b) / (n_a + n_b)
    var = pooled * (1.0 - pooled) * (1.0 / n_a + 1.0 / n_b)
    if var == 0.0:
        return ProportionTest(p_a=p_a, p_b=p_b, z=0.0, p_value=1.0)
    z = (p_a - p_b) / math.sqrt(var)
    return ProportionTest(p_a=p_a, p_b=p_b, z=z, p_value=float(sps.norm.sf(z)))
