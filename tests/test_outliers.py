"""Outlier counters (hessbench.outliers): exact counts on hand-made and planted spectra,
invariances (hypothesis), and clear errors for bad input."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from hessbench.outliers import METHODS, count_all, count_outliers, top_window

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True)


# ---- exact counts on hand-computed spectra -------------------------------------------

@pytest.mark.parametrize("method", METHODS)
def test_three_clear_outliers_all_methods(method):
    spectrum = [0.01, 50.0, 0.5, 40.0, 1.0, 30.0, 0.8, 0.2, 0.6, 0.9, 0.7, 0.3]
    assert count_outliers(spectrum, method).count == 3


def test_gap_hand_computed_with_negative_bulk():
    # descending 8, 4, 1, 0.5, -1, -3: gaps 4, 3, 0.5, 1.5, 2 -> largest after rank 1
    result = count_outliers([-3.0, 0.5, 8.0, -1.0, 1.0, 4.0], "gap")
    np.testing.assert_array_equal(result.criterion, [4.0, 3.0, 0.5, 1.5, 2.0])
    assert result.count == 1


def test_ratio_uses_positive_head_only():
    # positive head 8, 4, 1, 0.5: ratios 2, 4, 2 -> count 2; negatives ignored
    result = count_outliers([-3.0, 0.5, 8.0, -1.0, 1.0, 4.0], "ratio")
    np.testing.assert_allclose(np.exp(result.criterion), [2.0, 4.0, 2.0], rtol=1e-15)
    assert result.count == 2


def test_elbow_hand_computed():
    # log y = 1, 1, 0, 0, 0; x = 0, .25, .5, .75, 1; chord distance 1 - x - y at ranks 2..5
    result = count_outliers([100.0, 100.0, 1.0, 1.0, 1.0], "elbow")
    np.testing.assert_allclose(result.criterion, [-0.25, 0.5, 0.25, 0.0], atol=1e-15)
    assert result.count == 2


def test_gap_undercounts_outliers_spread_over_orders_of_magnitude():
    """The documented difference: outliers 10, 5, 2.5 over a bulk <= 0.1."""
    spectrum = [10.0, 5.0, 2.5, 0.1, 0.09, 0.08, 0.07]
    assert count_outliers(spectrum, "gap").count == 1
    assert count_outliers(spectrum, "ratio").count == 3
    assert count_outliers(spectrum, "elbow").count == 3


def test_top_m_window_restricts_candidates():
    # with the whole spectrum the tiny tail ratio 1e-3/1e-9 dominates; top-4 excludes it
    spectrum = [9.0, 8.0, 1.0, 0.9, 1e-3, 1e-9]
    assert count_outliers(spectrum, "ratio").count == 5
    result = count_outliers(spectrum, "ratio", top_m=4)
    assert result.count == 2
    np.testing.assert_array_equal(result.window, [9.0, 8.0, 1.0, 0.9])


def test_ratio_handles_subnormal_eigenvalues():
    result = count_outliers([1.0, 0.5, 5e-324], "ratio")
    assert result.count == 2 and np.isfinite(result.criterion).all()


def test_ties_go_to_smallest_count_and_flat_window():
    assert count_outliers([3.0, 2.0, 1.0], "gap").count == 1
    flat = count_outliers([2.0, 2.0, 2.0, 2.0], "elbow")
    assert flat.count == 1 and flat.margin == pytest.approx(1 / 3)
    assert count_outliers([2.0, 2.0, 2.0], "ratio").margin == 0.0


def test_count_all_and_torch_input():
    spectrum = torch.tensor([0.1, 7.0, 0.2, 6.0, 0.3, 0.15], dtype=torch.float64)
    results = count_all(spectrum, top_m=6)
    assert set(results) == set(METHODS)
    assert all(r.count == 2 for r in results.values())
    assert top_window(spectrum.float(), 3).dtype == np.float64


# ---- errors ---------------------------------------------------------------------------

@pytest.mark.parametrize("bad, match", [
    ([], "empty"),
    ([1.0, float("nan"), 0.5], "NaN"),
    ([1.0, float("inf"), 0.5], "NaN/inf"),
    (np.ones((2, 3)), "1-D"),
])
def test_bad_spectrum_raises(bad, match):
    with pytest.raises(ValueError, match=match):
        count_outliers(bad, "gap")


@pytest.mark.parametrize("top_m, error", [(1, ValueError), (6, ValueError), (0, ValueError),
                                          (2.0, TypeError), (True, TypeError)])
def test_top_m_out_of_range(top_m, error):
    with pytest.raises(error, match="top_m"):
        count_outliers([5.0, 4.0, 3.0, 2.0, 1.0], "gap", top_m=top_m)


@pytest.mark.parametrize("method", ["ratio", "elbow"])
def test_log_methods_need_two_positive_eigenvalues(method):
    with pytest.raises(ValueError, match="2 positive"):
        count_outliers([1.0, 0.0, -1.0, -2.0], method)


def test_unknown_method():
    with pytest.raises(ValueError, match="unknown method"):
        count_outliers([2.0, 1.0], "mad")


# ---- properties -----------------------------------------------------------------------

# no subnormals: scaling one by 0.5 can round it to 0 (5e-324 * 0.5 == 0.0), which changes
# the positive count; the counters are scale invariant in exact arithmetic only
finite = st.floats(-10.0, 10.0, allow_nan=False, allow_infinity=False, allow_subnormal=False)
spectra = st.lists(finite, min_size=4, max_size=40).filter(lambda v: sum(x > 0 for x in v) >= 2)


@SETTINGS
@given(values=spectra, data=st.data())
def test_permutation_invariance(values, data):
    shuffled = data.draw(st.permutations(values))
    for method in METHODS:
        assert count_outliers(values, method).count == count_outliers(shuffled, method).count


@SETTINGS
@given(values=spectra, scale=st.floats(1e-3, 1e3))
def test_positive_scaling_invariance(values, scale):
    values = np.asarray(values)
    for method in METHODS:
        base = count_outliers(values, method)
        # a near-tie may flip under rounding; the counters are invariant in exact arithmetic
        tol = 1e-9 * (np.abs(values).max() if method == "gap" else 1.0 + base.criterion.max())
        assume(base.margin > tol)
        assert count_outliers(scale * values, method).count == base.count


@SETTINGS
@given(bulk=st.lists(st.floats(0.5, 1.0), min_size=20, max_size=60),
       outliers=st.lists(st.floats(1e7, 1.5e7), min_size=1, max_size=8), data=st.data())
def test_planted_outliers_recovered_by_all_methods(bulk, outliers, data):
    """k outliers in [S, 1.5 S] over a bulk in [b/2, b], S/b = 1e7, window m = 20.

    gap: internal outlier gaps <= S/2 < S - b (separation), bulk gaps <= b/2.
    ratio: internal ratios <= 1.5 and <= 2 < S/b.
    elbow: in the normalised log window the bulk spans y <= log 2 / log(S/b) = 0.043
    < 1/(m-1) and outliers sit at y >= 1 - log 1.5 / log(S/b) = 0.975, which is more than
    k/(m-1) above the bulk for k <= 8: the sufficient condition in the module docstring.
    """
    spectrum = data.draw(st.permutations(bulk + outliers))
    for method in METHODS:
        assert count_outliers(spectrum, method, top_m=20).count == len(outliers), method


@SETTINGS
@given(bulk=st.lists(st.floats(-1.0, 1.0), min_size=5, max_size=60),
       outliers=st.lists(st.floats(10.0, 15.0), min_size=1, max_size=10))
def test_planted_outliers_gap_with_signed_bulk(bulk, outliers):
    """Separation >= 9 beats internal outlier gaps <= 5 and bulk gaps <= 2."""
    assert count_outliers(bulk + outliers, "gap").count == len(outliers)
