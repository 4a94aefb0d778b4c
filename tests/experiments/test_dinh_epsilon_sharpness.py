"""The Dinh et al. epsilon-sharpness experiment, tiny.

References: the closed forms ||p - theta'||_2 = epsilon and, by positive homogeneity of the
bias-free ReLU net, L(p(alpha)) = CE(s f_theta(x), y) with s = 1 - alpha*/alpha (relative
1e-12); Keskar et al.'s normalisation 100 (max L - L) / (1 + L).
"""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from hessbench.experiments import dinh_epsilon_sharpness as es
from hessbench.experiments.dinh_rescaling import digits_split, fit
from hessbench.models import mlp
from hessbench.symmetries import rescale
from tests.experiment_helpers import assert_rejects, record, registered

CLAIM = Path(__file__).resolve().parents[2] / "claims" / "dinh-epsilon-sharpness.toml"
TINY = {"n_train": 48, "n_test": 32, "width": 5, "steps": 100, "epsilon": 1e-2,
        "alpha_factors": [1.0, 2.0, 10.0]}


@pytest.fixture(scope="module")
def tiny_run():
    return es.dinh_epsilon_sharpness(TINY, 4, torch.device("cpu"))


def test_keskar_sharpness_closed_form():
    assert es.keskar_sharpness(2.0, 1.0) == pytest.approx(50.0, rel=1e-15)
    assert es.keskar_sharpness(0.5, 0.5) == 0.0


@settings(deadline=None, derandomize=True, max_examples=15)
@given(log_eps=st.floats(-4, 0), factor=st.floats(1.0, 1e3), seed=st.integers(0, 30))
def test_probe_is_on_the_ball_and_scales_the_output(log_eps, factor, seed):
    eps = 10.0 ** log_eps
    net = mlp(4, [3], 2, bias=False, seed=seed, dtype=torch.float64)
    alpha = factor * eps / float(net[0].weight.detach().norm())
    scaled = rescale(net, [alpha, 1 / alpha])
    point, dist = es.probe(scaled, eps)
    assert dist == pytest.approx(eps, rel=1e-12)
    x = torch.randn(5, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    s = 1 - 1 / factor
    assert torch.allclose(point(x), s * net(x), rtol=1e-10, atol=1e-13)


def test_metrics_against_the_homogeneity_closed_form(tiny_run):
    m = tiny_run.metrics
    assert set(m) == set(es.METRICS)
    p = es._check({**es.DEFAULTS, **TINY})
    data = digits_split(p, 4, torch.device("cpu"))
    net = mlp(64, [5], 10, bias=False, seed=4, dtype=torch.float64)
    fit(net, data, p, 4)
    with torch.no_grad():
        z = net(data["x_train"])
    for r, loss in zip(TINY["alpha_factors"], m["probe_loss"]):
        ref = float(nn.functional.cross_entropy((1 - 1 / r) * z, data["y_train"]))
        assert loss == pytest.approx(ref, rel=1e-12)
    assert m["degenerate_loss"] == pytest.approx(math.log(10), rel=1e-14)
    assert m["alpha_star"] == pytest.approx(TINY["epsilon"] / m["theta1_norm"], rel=1e-15)
    assert m["max_rel_output_diff"] < 1e-12 and m["max_ball_ratio"] < 1 + 1e-9
    assert m["probe_vs_degenerate"] < 1e-9 and all(d > 0 for d in m["lb_increments"])


def test_tanh_breaks_the_equivalence():
    m = es.dinh_epsilon_sharpness({**TINY, "activation": "tanh"}, 4, torch.device("cpu")).metrics
    assert m["max_rel_output_diff"] > 1e-3 and m["max_rel_loss_diff"] > 1e-3


@pytest.mark.parametrize("override, match", [
    ({"hidden": [4]}, "unknown params"),
    ({"alpha_factors": [2.0, 4.0]}, "start at 1"),
    ({"alpha_factors": [1.0, 4.0, 2.0]}, "increasing"),
    ({"epsilon": 0.0}, "epsilon"),
    ({"width": 0}, "width"),
])
def test_rejects_bad_params(override, match):
    assert_rejects(es.dinh_epsilon_sharpness, {**TINY, **override}, match)


def test_registered_with_figure(tiny_run):
    exp = registered("dinh_epsilon_sharpness", es.dinh_epsilon_sharpness, es.METRICS)
    fig = exp.figure([record(tiny_run, {"epsilon": 1e-2}, 4, {"epsilon": 1e-2})])
    assert "Dinh et al. 2017" in fig._suptitle.get_text()
    assert fig.axes[0].get_xlabel() and fig.axes[0].get_ylabel()


def test_claim_file_loads():
    from hessbench.claims.spec import load_claim

    claim = load_claim(CLAIM)
    assert claim.experiment == "dinh_epsilon_sharpness"
    for profile in ("smoke", "paper"):
        assert set(claim.setup(profile).params) <= set(es.DEFAULTS)
    assert {e.fields["metric"] for e in claim.expectations} <= set(es.METRICS)
