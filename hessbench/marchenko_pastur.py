"""The Marchenko-Pastur law and the BBP outlier of a spiked sample covariance.

For S = (1/N) X^T X with X an N x M matrix of i.i.d. entries of variance sigma^2 and
y = M / N, the eigenvalue distribution of S tends to (Marchenko & Pastur 1967)

    rho(x) = sqrt((b - x)(x - a)) / (2 pi sigma^2 y x)  on [a, b],
    a, b = sigma^2 (1 -+ sqrt(y))^2,

plus an atom of mass 1 - 1/y at 0 when y > 1. With one population eigenvalue
ell sigma^2 (ell > 1 + sqrt(y)) the top eigenvalue leaves the bulk and sits at
sigma^2 ell (1 + y / (ell - 1)) (Baik, Ben Arous, Peche 2005; Sagun et al. 2018, App. B,
Theorem 1); below the threshold it stays at the edge b.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import integrate

__all__ = ["mp_edges", "mp_density", "mp_cdf", "bbp_outlier", "ks_distance"]


def _check(ratio: float, scale: float) -> None:
    if not (ratio > 0 and scale > 0 and math.isfinite(ratio) and math.isfinite(scale)):
        raise ValueError(f"Marchenko-Pastur needs ratio y = M / N > 0 and scale sigma^2 > 0, "
                         f"got y = {ratio}, sigma^2 = {scale}")


def mp_edges(ratio: float, scale: float = 1.0) -> tuple[float, float]:
    """The bulk's edges (a, b) = sigma^2 (1 -+ sqrt(y))^2."""
    _check(ratio, scale)
    r = math.sqrt(ratio)
    return scale * (1 - r) ** 2, scale * (1 + r) ** 2


def mp_density(x: np.ndarray, ratio: float, scale: float = 1.0) -> np.ndarray:
    """The density of the continuous part (mass min(1, 1/y)) at ``x``; 0 outside [a, b]."""
    a, b = mp_edges(ratio, scale)
    x = np.asarray(x, dtype=np.float64)
    inside = (x > a) & (x < b)
    out = np.zeros_like(x)
    xi = x[inside]
    out[inside] = np.sqrt((b - xi) * (xi - a)) / (2 * math.pi * scale * ratio * xi)
    return out


def mp_cdf(t: float, ratio: float, scale: float = 1.0) -> float:
    """P(lambda <= t), the atom at 0 included. With x = a + (b - a) sin^2(theta) the
    integrand (b - a)^2 sin^2 cos^2 / (pi sigma^2 y x) is smooth, also for a = 0 (y = 1)."""
    a, b = mp_edges(ratio, scale)
    atom = max(0.0, 1.0 - 1.0 / ratio)
    if t < 0:
        return 0.0
    if t <= a:
        return atom
    if t >= b:
        return 1.0
    theta = math.asin(math.sqrt((t - a) / (b - a)))

    def f(th: float) -> float:
        s2 = math.sin(th) ** 2
        return (b - a) ** 2 * s2 * (1 - s2) / (math.pi * scale * ratio * (a + (b - a) * s2))

    return atom + integrate.quad(f, 0.0, theta, epsabs=1e-12, epsrel=1e-10)[0]


def bbp_outlier(spike: float, ratio: float, scale: float = 1.0) -> float:
    """Where the top eigenvalue sits for a population spike ``spike`` sigma^2: the outlier
    sigma^2 ell (1 + y / (ell - 1)) above the threshold ell > 1 + sqrt(y), else the edge b."""
    _check(ratio, scale)
    if spike <= 1 + math.sqrt(ratio):
        return mp_edges(ratio, scale)[1]
    return scale * spike * (1 + ratio / (spike - 1))


def ks_distance(eigenvalues: np.ndarray, ratio: float, scale: float = 1.0,
                zero_rtol: float = 1e-9) -> float:
    """Kolmogorov-Smirnov distance sup_t |F_emp(t) - F_MP(t)| of eigenvalues to the law,
    the atom at 0 included: eigenvalues with |lambda| <= ``zero_rtol`` max |lambda| count
    as exact zeros (float round-off)."""
    ev = np.sort(np.asarray(eigenvalues, dtype=np.float64))
    if ev.size == 0:
        raise ValueError("ks_distance needs at least one eigenvalue")
    ev = np.where(np.abs(ev) <= zero_rtol * np.abs(ev).max(), 0.0, ev)
    n = ev.size
    cdf = np.array([mp_cdf(float(t), ratio, scale) for t in ev])
    left_cdf = np.where(ev == 0.0, 0.0, cdf)       # F(t-): the atom jumps at 0
    right_emp = np.searchsorted(ev, ev, side="right") / n
    left_emp = np.searchsorted(ev, ev, side="left") / n
    return float(max(np.abs(right_emp - cdf).max(), np.abs(left_emp - left_cdf).max()))
