"""Wei & Schwab Fig. 3 experiment: its pieces against references, and a tiny end-to-end run."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import functional_call, hessian

from hessbench.data import digits
from hessbench.experiments.registry import REGISTRY
from hessbench.experiments.wei_schwab_trace_network import (
    KINK,
    _kinks,
    _slope_per_1000,
    piecewise_linear_mlp_trace,
    wei_schwab_trace_network,
)
from hessbench.models import mlp
from tests.experiment_helpers import record

CPU = torch.device("cpu")
TINY = {"n_samples": 60, "hidden": [4], "gd_steps": 60, "interval": 15, "checkpoints": 2,
        "batch_size": 10, "polish_max_iter": 20, "project_max_iter": 10, "newton_max_steps": 1,
        "cg_max_iter": 10}


def _problem(hidden: list[int], activation: str = "relu"):
    x, y = digits(60, seed=1, dtype=torch.float64)
    model = mlp(64, hidden, 10, seed=2, dtype=torch.float64, activation=activation)
    return model, nn.CrossEntropyLoss(label_smoothing=0.1), x, y


def _dense_trace(model: nn.Module, loss_fn: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    flat0 = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def loss(flat: torch.Tensor) -> torch.Tensor:
        parts = torch.split(flat, [s.numel() for s in shapes])
        tree = {n: t.reshape(s) for n, t, s in zip(names, parts, shapes)}
        return loss_fn(functional_call(model, tree, (x,)), y)

    return torch.diagonal(hessian(loss)(flat0)).sum().item()


@pytest.mark.parametrize("activation", ["relu", "linear"])
@pytest.mark.parametrize("hidden", [[3], [5, 4]])
def test_piecewise_linear_mlp_trace_matches_dense_autograd_hessian(hidden: list[int],
                                                                    activation: str) -> None:
    model, loss_fn, x, y = _problem(hidden, activation)
    exact = _dense_trace(model, loss_fn, x, y)
    assert piecewise_linear_mlp_trace(model, loss_fn, x, y) == pytest.approx(exact, rel=1e-10)


def test_piecewise_linear_mlp_trace_refuses_what_the_identity_does_not_cover() -> None:
    model, loss_fn, x, y = _problem([3], activation="tanh")  # tanh'' != 0: diag H != diag G
    with pytest.raises(TypeError, match="Linear, ReLU and Identity"):
        piecewise_linear_mlp_trace(model, loss_fn, x, y)
    model, _, x, y = _problem([3])
    with pytest.raises(ValueError, match="mean-reduced"):
        piecewise_linear_mlp_trace(model, nn.CrossEntropyLoss(reduction="sum"), x, y)


def test_kinks_counts_small_pre_activations_of_every_relu() -> None:
    model = nn.Sequential(nn.Linear(1, 2), nn.ReLU(), nn.Linear(2, 1), nn.ReLU()).double()
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0], [1.0]]))
        model[0].bias.copy_(torch.tensor([0.0, 1.0]))
        model[2].weight.copy_(torch.tensor([[1.0, -1.0]]))
        model[2].bias.zero_()
    x = torch.tensor([[0.0], [KINK / 2], [1.0]], dtype=torch.float64)
    # layer 1: unit 0 at 0 and KINK/2 (2 kinks); layer 2: relu(a) - relu(a + 1) = -1 (none)
    assert _kinks(model, x) == 2


def test_slope_per_1000_steps_of_a_line() -> None:
    assert _slope_per_1000([0, 500, 1000, 2000], [3.0, 2.5, 2.0, 1.0]) == pytest.approx(-1.0)


def test_tiny_run_returns_declared_metrics_and_draws() -> None:
    m = wei_schwab_trace_network(TINY, 0, CPU)
    exp = REGISTRY["wei_schwab_trace_network"]
    assert set(m.metrics) == exp.metrics
    assert m.metrics["steps"] == [0, 15, 30]
    assert m.metrics["sgd_trace"][0] == m.metrics["gd_trace"][0]  # both start at theta*
    assert len(m.metrics["sgd_trace"]) == len(m.metrics["gd_projection_grad_norm"]) == 3
    assert 0 <= m.metrics["not_converged"] <= 1 + 2 * 2
    # the polish never raises the loss it started from, and reports the point's gradient
    assert m.metrics["loss_star"] <= m.metrics["loss_gd"]
    assert (m.metrics["not_converged"] == 0) == all(
        g <= TINY.get("grad_tol", 1e-8) for p in ("sgd", "gd")
        for g in m.metrics[f"{p}_projection_grad_norm"])
    assert exp.figure([record(m, TINY, 0), record(m, TINY, 1)]).axes


@pytest.mark.slow
def test_linear_net_reaches_its_smooth_minima_and_gd_stays_there() -> None:
    """The linear variant's premises at tiny scale: every minimisation meets grad_tol (a
    smooth valley, unlike the ReLU net), and GD from such a minimum leaves Tr H unchanged
    to far below the SGD change (the drift bound lr T ||g|| of the claim file)."""
    params = {**TINY, "n_samples": 200, "hidden": [12], "activation": "linear",
              "gd_steps": 300, "interval": 50, "batch_size": 25, "polish_max_iter": 300,
              "project_max_iter": 100, "newton_max_steps": 3, "cg_max_iter": 100}
    m = wei_schwab_trace_network(params, 0, CPU)
    assert m.metrics["not_converged"] == 0
    assert m.metrics["kinks_star"] == 0
    assert max(m.metrics["gd_projection_grad_norm"]) <= 1e-8
    assert max(abs(t - m.metrics["gd_trace"][0]) for t in m.metrics["gd_trace"]) < 1e-6
    assert abs(m.metrics["sgd_trace_change"]) > 1e-3


def test_unknown_param_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown params"):
        wei_schwab_trace_network({"hiden": [4]}, 0, CPU)


def test_activation_without_an_exact_trace_is_rejected() -> None:
    with pytest.raises(ValueError, match="'relu' or 'linear'"):
        wei_schwab_trace_network({**TINY, "activation": "tanh"}, 0, CPU)
