"""hessbench.marchenko_pastur against closed forms (mass, mean, second moment, y = 1 CDF,
BBP) and the sagun_logistic_bulk experiment against the exact Hessian (1/4N) X^T X; the
claim file, validation and the figure (small sizes)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure
from scipy import integrate

from hessbench import marchenko_pastur as mp
from hessbench.claims.spec import load_claim
from hessbench.experiments import sagun_logistic_bulk as slb
from tests.experiment_helpers import assert_rejects, record, registered

CLAIM = Path(__file__).resolve().parents[2] / "claims" / "sagun-logistic-bulk.toml"
CPU = torch.device("cpu")


@settings(deadline=None, derandomize=True, max_examples=10)
@given(ratio=st.floats(0.05, 4.0), scale=st.floats(0.1, 3.0))
def test_mp_moments_closed_form(ratio, scale):
    a, b = mp.mp_edges(ratio, scale)
    mass = integrate.quad(lambda x: mp.mp_density(np.array([x]), ratio, scale)[0], a, b,
                          limit=200)[0]
    mean = integrate.quad(lambda x: x * mp.mp_density(np.array([x]), ratio, scale)[0], a, b,
                          limit=200)[0]
    second = integrate.quad(lambda x: x * x * mp.mp_density(np.array([x]), ratio, scale)[0],
                            a, b, limit=200)[0]
    # continuous mass min(1, 1/y); over all M eigenvalues E lambda = s, E lambda^2 = s^2 (1+y)
    assert mass == pytest.approx(min(1.0, 1.0 / ratio), rel=1e-5)
    assert mean == pytest.approx(scale, rel=1e-5)
    assert second == pytest.approx(scale ** 2 * (1 + ratio), rel=1e-5)
    assert mp.mp_cdf(b, ratio, scale) == 1.0 and mp.mp_cdf(-1.0, ratio, scale) == 0.0
    assert mp.mp_cdf(a, ratio, scale) == pytest.approx(max(0.0, 1 - 1 / ratio))


def test_mp_cdf_closed_form_at_ratio_one():
    # y = 1, s = 1: density sqrt(4 - t) / (2 pi sqrt(t)) on [0, 4]; with t = 4 sin^2(theta),
    # F(t) = (4/pi)(theta/2 + sin(2 theta)/4), so F(1) = 1/3 + sqrt(3)/(2 pi)
    for t in (0.01, 0.5, 1.0, 2.0, 3.5):
        ref = integrate.quad(lambda x: math.sqrt(4 - x) / (2 * math.pi * math.sqrt(x)), 0, t)[0]
        assert mp.mp_cdf(t, 1.0) == pytest.approx(ref, abs=1e-8)
    assert mp.mp_cdf(1.0, 1.0) == pytest.approx(1 / 3 + math.sqrt(3) / (2 * math.pi), abs=1e-9)


def test_bbp_closed_form():
    assert mp.bbp_outlier(10.0, 0.25, 0.25) == pytest.approx(0.25 * 10 * (1 + 0.25 / 9))
    assert mp.bbp_outlier(1.2, 0.25) == pytest.approx((1 + 0.5) ** 2)  # below c = 1.5: edge


def test_ks_distance_exact_cases():
    # the quantiles of the law itself: distance at most 1/n; a point mass far away: 1
    ratio = 0.5
    qs = [0.1, 0.3, 0.5, 0.7, 0.9]
    from scipy.optimize import brentq
    a, b = mp.mp_edges(ratio)
    ev = [brentq(lambda t, q=q: mp.mp_cdf(t, ratio) - q, a, b) for q in qs]
    assert mp.ks_distance(np.array(ev), ratio) == pytest.approx(0.1, abs=1e-8)
    assert mp.ks_distance(np.full(3, 100.0), ratio) == pytest.approx(1.0)
    # y = 2: the atom at 0 (half the mass) is matched by exact zeros
    assert mp.ks_distance(np.array([0.0, 1e-18, 1.0, 2.0]), 2.0) < 0.5


@pytest.mark.parametrize("bad", [(0.0, 1.0), (1.0, -1.0), (float("nan"), 1.0)])
def test_mp_rejects_bad_parameters(bad):
    with pytest.raises(ValueError, match="ratio"):
        mp.mp_edges(*bad)
    with pytest.raises(ValueError, match="at least one"):
        mp.ks_distance(np.array([]), 1.0)


SMALL = {"num_samples": 120, "ratio": 0.25}


def test_hessian_equals_closed_form_and_metrics():
    run = slb.sagun_logistic_bulk(SMALL, 3, CPU)
    m = run.metrics
    assert set(m) == set(slb.METRICS)
    assert m["num_params"] == 30 and m["num_samples"] == 120
    assert m["hessian_closed_form_err"] < 1e-12
    x, _ = slb.blobs_data(120, 30, 2, 3.0, 3)
    ref = np.linalg.eigvalsh((x.T @ x / 480).numpy())[::-1]
    np.testing.assert_allclose(run.figure_data["eigenvalues"], ref, rtol=0, atol=1e-12)
    assert m["spike"] == 10.0 and m["bbp_threshold"] == pytest.approx(1.5)
    assert slb.sagun_logistic_bulk(SMALL, 3, CPU).metrics == m  # deterministic
    one = slb.sagun_logistic_bulk({**SMALL, "blobs": 1}, 3, CPU).metrics
    assert one["spike"] == 1.0 and one["top_over_edge"] < m["top_over_edge"]


def test_blobs_data_layout():
    x, y = slb.blobs_data(10, 4, 2, 5.0, 0)
    assert x.shape == (10, 4) and int(y.sum()) == 5 and x.dtype == torch.float64
    x1, y1 = slb.blobs_data(10, 4, 1, 5.0, 0)
    assert set(y1.tolist()) <= {0, 1}


@pytest.mark.parametrize("params, match", [
    ({"blobs": 3}, "blobs"), ({"num_samples": 7}, "num_samples"), ({"ratio": 0.0}, "ratio"),
    ({"separation": -1.0}, "separation"), ({"typo": 1}, "unknown"),
])
def test_bad_params_raise(params, match):
    assert_rejects(slb.sagun_logistic_bulk, {**SMALL, **params}, match)


def test_claim_file_and_figure():
    claim = load_claim(CLAIM)
    registered(claim.experiment, slb.sagun_logistic_bulk, slb.METRICS)
    assert [c.name for c in claim.controls] == ["one-blob", "below-threshold"]
    assert claim.setup("paper").grid["ratio"] == (0.02, 0.25, 1.0, 2.0)  # Fig. 10's alphas
    runs = [(slb.sagun_logistic_bulk({**SMALL, "ratio": r}, 0, CPU), r) for r in (0.25, 2.0)]
    fig = slb.plot_logistic_bulk([record(run, {**SMALL, "ratio": r, "blobs": 2})
                                  for run, r in runs])
    assert isinstance(fig, Figure) and "Fig. 10" in fig._suptitle.get_text()
    assert all(ax.get_xlabel() for ax in fig.axes)
