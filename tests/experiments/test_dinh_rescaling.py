"""The Dinh et al. rescaling experiment (hessbench/experiments/dinh_rescaling.py), tiny.

References: a dense float64 Hessian of the trained net by autograd (tests.reference), pushed
through the exact transform law, for lambda_max and trace at every alpha (relative
1e-9: float64 dense eigensolves of matrices built two ways).
"""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from hessbench.experiments import dinh_rescaling as dr
from hessbench.symmetries import layer_alphas, parameter_scales, rescaled_hessian
from tests.experiment_helpers import assert_rejects, record, registered
from tests.reference import reference_hessian

CLAIM = Path(__file__).resolve().parents[2] / "claims" / "dinh-rescaling.toml"

# depth 2, width 5: layer sizes 325, 30, 60, so the smallest layer is NOT the last one
# (the compensating layer sits in the middle and the last bias stays uninflated).
TINY = {"n_train": 64, "n_test": 64, "depth": 2, "width": 5, "steps": 200,
        "alphas": [1e-3, 1e-2, 1e-1, 1.0, 10.0], "sharpness_steps": 5}


@pytest.fixture(scope="module")
def tiny_run():
    return dr.dinh_rescaling(TINY, 3, torch.device("cpu"))


def test_metrics_complete_and_invariance_exact(tiny_run):
    m = tiny_run.metrics
    assert set(m) == set(dr.METRICS)
    assert m["layer_sizes"] == [325, 30, 60] and m["n_params"] == 415
    for key in ("rel_output_diff", "law_rel_fro", "lambda_max", "trace", "sharpness"):
        assert len(m[key]) == len(TINY["alphas"])
    assert m["max_rel_output_diff"] < 1e-12 and m["max_rel_loss_diff"] < 1e-12
    assert m["max_test_accuracy_diff"] == 0
    assert m["max_law_rel_fro"] < 1e-9
    assert m["fit_decades"] == pytest.approx(2.0)
    # alpha = 1 is the original net: same sharpness (same seed), no difference at all
    one = TINY["alphas"].index(1.0)
    assert m["sharpness"][one] == m["sharpness_before"]
    assert m["rel_output_diff"][one] == 0 and m["law_rel_fro"][one] == 0


def test_kayer_count_respects_the_guaranteed_bound(tiny_run):
    m = tiny_run.metrics
    # k* = layer 2 (30 params); the last bias (10) is not inflated either
    assert m["min_layer_size"] == 30 and m["uninflated_params"] == 40
    assert m["guaranteed_bound"] == m["rank"] - 40
    assert m["eigs_above_M"] >= m["guaranteed_bound"]
    assert m["eigs_above_M_excess"] == m["eigs_above_M"] - m["theorem_bound"]
    assert m["alpha_theorem"] == pytest.approx(math.sqrt(1e-10 / 10.0), rel=1e-15)


def test_spectral_numbers_match_the_law_on_a_reference_hessian(tiny_run):
    """lambda_max and trace of H(T_alpha theta), as measured, against the torch.func
    Hessian at theta pushed through H(T theta) = D^-1 H(theta) D^-1."""
    p = dr._check({**dr.DEFAULTS, **TINY})
    model, data = dr._train(p, 3, torch.device("cpu"))
    h0 = reference_hessian(model, nn.functional.cross_entropy, data["x_train"], data["y_train"])
    m = tiny_run.metrics
    for i, alpha in enumerate(TINY["alphas"]):
        d = parameter_scales(model, layer_alphas(3, alpha, scaled=[0], compensate=1))
        h = rescaled_hessian(h0, d)
        assert m["lambda_max"][i] == pytest.approx(float(torch.linalg.eigvalsh(h)[-1]), rel=1e-9)
        assert m["trace"][i] == pytest.approx(float(h.diagonal().sum()), rel=1e-9)
    ev0 = torch.linalg.eigvalsh(h0)
    assert m["lambda_min_over_max"] == pytest.approx(float(ev0[0] / ev0[-1]), rel=1e-6)


def test_deterministic_under_a_seed(tiny_run):
    again = dr.dinh_rescaling(TINY, 3, torch.device("cpu"))
    assert again.metrics == tiny_run.metrics


@pytest.mark.parametrize("override, match", [
    ({"hidden": [4]}, "unknown params"),
    ({"alphas": [1e-2, 1e-3, 1.0]}, "increasing"),
    ({"alphas": [1e-2, 1.0, 10.0]}, ">= 2 alphas"),
    ({"rank_rtol": 0.0}, "rank_rtol"),
    ({"m_factor": 1.0}, "m_factor"),
    ({"depth": 0}, "depth and width"),
])
def test_rejects_bad_params(override, match):
    assert_rejects(dr.dinh_rescaling, {**TINY, **override}, match)


def test_registered_with_figure(tiny_run):
    exp = registered("dinh_rescaling", dr.dinh_rescaling, dr.METRICS)
    fig = exp.figure([record(tiny_run, {**dr.DEFAULTS, **TINY}, 3, {"depth": 2})])
    assert f"{tiny_run.metrics['lambda_max_slope']:.3f}" in fig.axes[0].get_title()


def test_claim_file_loads_and_fits_three_decades():
    from hessbench.claims.spec import load_claim

    claim = load_claim(CLAIM)
    assert claim.experiment == "dinh_rescaling"
    for profile in ("smoke", "paper"):
        setup = claim.setup(profile)
        assert set(setup.params) <= set(dr.DEFAULTS)
        fit = [a for a in setup.params["alphas"] if a <= setup.params["fit_alpha_max"]]
        assert math.log10(max(fit) / min(fit)) >= 3 - 1e-12
    named = {e.fields["metric"] for e in claim.expectations}
    assert len(named) == len(claim.expectations) == 8 and named <= set(dr.METRICS)
