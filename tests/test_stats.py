"""hessbench.stats against closed forms."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hessbench import stats

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True)
finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)


@SETTINGS
@given(slope=finite, intercept=finite, n=st.integers(3, 40), x0=st.floats(-10, 10),
       dx=st.floats(0.1, 5))
def test_linear_fit_recovers_exact_line(slope: float, intercept: float, n: int, x0: float,
                                        dx: float) -> None:
    x = x0 + dx * np.arange(n)
    fit = stats.linear_fit(x, slope * x + intercept)
    scale = abs(slope) * (abs(x0) + dx * n) + abs(intercept) + 1.0
    assert fit.slope == pytest.approx(slope, abs=1e-9 * scale)
    assert fit.intercept == pytest.approx(intercept, abs=1e-9 * scale * (1 + abs(x0) + dx * n))
    if abs(slope) * dx > 1e-6 * (1 + abs(intercept)):  # the line is not lost in rounding
        assert fit.r2 == pytest.approx(1.0, abs=1e-9)
    assert (fit.n, fit.x_min, fit.x_max) == (n, x.min(), x.max())


def test_linear_fit_r2_matches_definition() -> None:
    x = np.array([0.0, 1.0, 2.0, 3.0])
    y = np.array([0.0, 1.0, 1.0, 3.0])
    fit = stats.linear_fit(x, y)
    # closed form: slope = Sxy/Sxx = 4.5/5 = 0.9, intercept = 1.25 - 0.9*1.5 = -0.1
    assert fit.slope == pytest.approx(0.9, abs=1e-12)
    assert fit.intercept == pytest.approx(-0.1, abs=1e-12)
    resid = y - (0.9 * x - 0.1)
    assert fit.r2 == pytest.approx(1 - resid @ resid / 4.75, abs=1e-12)


def test_linear_fit_constant_y_has_r2_one() -> None:
    fit = stats.linear_fit([0, 1, 2], [5, 5, 5])
    assert (fit.slope, fit.intercept, fit.r2) == (0.0, 5.0, 1.0)


@pytest.mark.parametrize("x, y, match", [([0, 1], [0, 1], "at least 3"),
                                         ([1, 1, 1], [0, 1, 2], "all x values are equal"),
                                         ([0, 1, 2], [0, 1], "differ in length"),
                                         ([0, 1, 2], [0, float("nan"), 1], "NaN")])
def test_linear_fit_rejects_degenerate_input(x: list, y: list, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        stats.linear_fit(x, y)


def test_linear_fit_of_two_points_when_allowed() -> None:
    fit = stats.linear_fit([1.0, 3.0], [2.0, -2.0], min_points=2)
    assert (fit.slope, fit.intercept, fit.r2, fit.n) == (-2.0, 4.0, 1.0, 2)
    with pytest.raises(ValueError, match="at least 2 points"):
        stats.linear_fit([1.0], [2.0], min_points=2)
    with pytest.raises(ValueError, match="min_points must be >= 2"):
        stats.linear_fit([1.0, 2.0], [2.0, 3.0], min_points=1)


@pytest.mark.parametrize("x, y", [([0.0, 0.5, 2.0, 3.5], [1.0, 0.2, -3.1, -6.0]),
                                  ([1e-4, 1e-3, 1e-2, 1e-1], [5.0, 3.0, 1.1, -0.9])])
def test_linear_fit_agrees_with_polyfit(x: list, y: list) -> None:
    fit = stats.linear_fit(x, y)
    slope, intercept = np.polyfit(x, y, 1)
    assert fit.slope == pytest.approx(slope, rel=1e-12)
    assert fit.intercept == pytest.approx(intercept, rel=1e-12)


@pytest.mark.parametrize("df, t_ref", [
    (1, math.tan(math.pi * (0.95 - 0.5))),                       # Cauchy quantile
    (2, (2 * 0.95 - 1) / math.sqrt(2 * 0.95 * 0.05)),            # closed form for 2 dof
])
def test_confidence_bound_uses_student_t_quantile(df: int, t_ref: float) -> None:
    samples = np.arange(df + 1, dtype=float) ** 2  # n = df + 1
    n, mean, s = samples.size, samples.mean(), samples.std(ddof=1)
    up = stats.mean_confidence_bound(samples, 0.95, "upper")
    lo = stats.mean_confidence_bound(samples, 0.95, "lower")
    assert up.bound == pytest.approx(mean + t_ref * s / math.sqrt(n), rel=1e-10)
    assert lo.bound == pytest.approx(mean - t_ref * s / math.sqrt(n), rel=1e-10)
    assert (up.n, up.mean, up.std) == (n, pytest.approx(mean), pytest.approx(s))


@SETTINGS
@given(samples=st.lists(st.floats(-100, 100), min_size=2, max_size=20),
       l1=st.floats(0.5, 0.99), l2=st.floats(0.5, 0.99))
def test_confidence_bound_monotone_in_level(samples: list[float], l1: float, l2: float) -> None:
    lo_level, hi_level = sorted((l1, l2))
    a = stats.mean_confidence_bound(samples, lo_level, "upper").bound
    b = stats.mean_confidence_bound(samples, hi_level, "upper").bound
    assert b >= a - 1e-9 * (1 + abs(a))
    c = stats.mean_confidence_bound(samples, lo_level, "lower").bound
    d = stats.mean_confidence_bound(samples, hi_level, "lower").bound
    assert d <= c + 1e-9 * (1 + abs(c))


def test_confidence_bound_needs_two_samples() -> None:
    with pytest.raises(ValueError, match="at least 2 samples, got 1"):
        stats.mean_confidence_bound([1.0], 0.95, "upper")
    with pytest.raises(ValueError, match="level"):
        stats.mean_confidence_bound([1.0, 2.0], 1.0, "upper")


def test_two_proportion_ztest_matches_hand_computation() -> None:
    r = stats.two_proportion_ztest(30, 50, 15, 50)
    pooled = 45 / 100
    z = (0.6 - 0.3) / math.sqrt(pooled * (1 - pooled) * (2 / 50))
    assert (r.p_a, r.p_b) == (0.6, 0.3)
    assert r.z == pytest.approx(z, rel=1e-12)
    assert r.p_value == pytest.approx(0.5 * math.erfc(z / math.sqrt(2)), rel=1e-10)
    # the one-sided alternative is p_a > p_b: swapping the groups gives 1 - p
    assert stats.two_proportion_ztest(15, 50, 30, 50).p_value == pytest.approx(1 - r.p_value)


def test_two_proportion_ztest_degenerate_and_invalid() -> None:
    assert stats.two_proportion_ztest(0, 10, 0, 10).p_value == 1.0
    assert stats.two_proportion_ztest(10, 10, 5, 5).p_value == 1.0
    with pytest.raises(ValueError, match="outside"):
        stats.two_proportion_ztest(11, 10, 0, 10)
    with pytest.raises(ValueError, match="positive"):
        stats.two_proportion_ztest(0, 0, 0, 10)
