"""The Dinh et al. weight-normalisation experiment and WeightNormLinear, tiny.

References: the closed form w = g v / ||v|| of a plain Linear layer; a dense float64 Hessian
by torch.func.hessian pushed through H_vv(alpha v) = alpha^-2 H_vv(v) (relative 1e-9).
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.func import functional_call, hessian

from hessbench.experiments import dinh_weight_norm as wn
from hessbench.models import WeightNormLinear, mlp, weight_normalise
from tests.experiment_helpers import assert_rejects, record, registered

CLAIM = Path(__file__).resolve().parents[2] / "claims" / "dinh-weight-norm.toml"
TINY = {"n_train": 32, "n_test": 32, "width": 4, "steps": 50,
        "alphas": [1e-2, 1e-1, 1.0, 10.0, 100.0]}


@pytest.fixture(scope="module")
def tiny_run():
    return wn.dinh_weight_norm(TINY, 3, torch.device("cpu"))


def _net(seed: int = 0) -> nn.Sequential:
    return mlp(5, [3], 2, seed=seed, dtype=torch.float64)


def test_weight_normalise_keeps_the_function_and_the_closed_form():
    plain = _net()
    net = weight_normalise(plain)
    x = torch.randn(7, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(net(x), plain(x), rtol=1e-14, atol=1e-14)
    layer = net[0]
    w = layer.g[:, None] * layer.v / layer.v.norm(dim=1, keepdim=True)
    assert torch.allclose(w, plain[0].weight, rtol=1e-14, atol=0)
    names = [n for n, _ in net.named_parameters()]
    assert names == ["0.v", "0.g", "0.bias", "2.v", "2.g", "2.bias"]


@settings(deadline=None, derandomize=True, max_examples=15)
@given(log_alpha=st.floats(-4, 4), seed=st.integers(0, 50))
def test_v_scaling_is_a_symmetry_and_plain_scaling_is_not(log_alpha, seed):
    alpha = 10.0 ** log_alpha
    x = torch.randn(6, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    net = weight_normalise(_net(seed))
    out = net(x)
    diff = (wn.scale_directions(net, alpha)(x) - out).abs().max() / out.abs().max()
    assert diff < 1e-12
    plain = _net(seed)
    if abs(log_alpha) > 0.1:
        assert not torch.allclose(wn.scale_directions(plain, alpha)(x), plain(x), rtol=1e-6)


def test_weight_norm_layer_rejects_bad_shapes():
    with pytest.raises(ValueError, match="need v"):
        WeightNormLinear(torch.ones(3, 2), torch.ones(2), None)
    with pytest.raises(TypeError, match="nn.Sequential"):
        weight_normalise(nn.Linear(2, 2))


def test_scaled_mask_marks_v_and_plain_weights():
    net = weight_normalise(_net())
    mask = wn.scaled_mask(net)
    assert mask.tolist() == [True] * 15 + [False] * 6 + [True] * 6 + [False] * 4
    assert wn.scaled_mask(_net()).tolist() == [True] * 15 + [False] * 3 + [True] * 6 + [False] * 2


def test_metrics_exact_invariance_and_alpha_power_law(tiny_run):
    m = tiny_run.metrics
    assert set(m) == set(wn.METRICS)
    assert m["max_rel_output_diff"] < 1e-12 and m["max_rel_loss_diff"] < 1e-12
    assert m["max_test_accuracy_diff"] == 0 and m["max_law_rel_fro"] < 1e-9
    assert m["slope_v_sharp"] == pytest.approx(-2.0, abs=1e-9)
    assert m["slope_v_flat"] == pytest.approx(-2.0, abs=1e-9)
    assert m["decades_sharp"] == pytest.approx(2.0) and m["decades_flat"] == pytest.approx(2.0)
    assert m["flattening_v"] == pytest.approx(1e-4, rel=1e-9)


def test_lambda_max_v_matches_a_torch_func_reference(tiny_run):
    p = wn._check({**wn.DEFAULTS, **TINY})
    model, data = wn._train(p, 3, torch.device("cpu"))
    names = [n for n, _ in model.named_parameters()]
    v_names = [n for n in names if n.endswith(".v")]
    fixed = {n: q.detach() for n, q in model.named_parameters()}

    def loss_v(*vs: torch.Tensor) -> torch.Tensor:
        out = functional_call(model, {**fixed, **dict(zip(v_names, vs))}, (data["x_train"],))
        return nn.functional.cross_entropy(out, data["y_train"])

    blocks = hessian(loss_v, argnums=tuple(range(len(v_names))))(*[fixed[n] for n in v_names])
    sizes = [fixed[n].numel() for n in v_names]
    h_vv = torch.cat([torch.cat([blocks[i][j].reshape(sizes[i], sizes[j])
                                 for j in range(len(sizes))], 1) for i in range(len(sizes))])
    lam = float(torch.linalg.eigvalsh((h_vv + h_vv.T) / 2)[-1])
    for alpha, measured in zip(TINY["alphas"], tiny_run.metrics["lambda_max_v"]):
        assert measured == pytest.approx(lam / alpha ** 2, rel=1e-9)


def test_plain_control_breaks_invariance():
    m = wn.dinh_weight_norm({**TINY, "parameterisation": "plain"}, 3, torch.device("cpu")).metrics
    assert m["max_rel_output_diff"] > 1e-3 and m["max_law_rel_fro"] > 1e-3


@pytest.mark.parametrize("override, match", [
    ({"hidden": [4]}, "unknown params"),
    ({"alphas": [1e-2, 1e-3, 1.0, 100.0]}, "increasing"),
    ({"alphas": [1e-2, 0.5, 2.0, 100.0]}, "contain 1"),
    ({"alphas": [0.0, 1.0, 100.0]}, "positive"),
    ({"fit_alpha_max": 0.01}, ">= 2 alphas"),
    ({"parameterisation": "spectral"}, "parameterisation"),
    ({"width": 0}, "depth and width"),
])
def test_rejects_bad_params(override, match):
    assert_rejects(wn.dinh_weight_norm, {**TINY, **override}, match)


def test_registered_with_figure(tiny_run):
    exp = registered("dinh_weight_norm", wn.dinh_weight_norm, wn.METRICS)
    fig = exp.figure([record(tiny_run, TINY, 3)])  # the engine passes declared params only
    assert "Dinh et al. 2017" in fig._suptitle.get_text()
    assert fig.axes[0].get_xlabel() and fig.axes[0].get_ylabel() and fig.axes[1].get_ylabel()


def test_claim_file_loads():
    from hessbench.claims.spec import load_claim

    claim = load_claim(CLAIM)
    assert claim.experiment == "dinh_weight_norm"
    for profile in ("smoke", "paper"):
        assert set(claim.setup(profile).params) <= set(wn.DEFAULTS)
    assert {e.fields["metric"] for e in claim.expectations} <= set(wn.METRICS)
