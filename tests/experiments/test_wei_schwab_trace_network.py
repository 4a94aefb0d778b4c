"""Wei & Schwab Fig. 3 experiment: its pieces against references, and a tiny end-to-end run."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.func import functional_call, hessian

from hessbench.data import digits
from hessbench.experiments.registry import REGISTRY
from hessbench.experiments.wei_schwab_trace_network import (
    piecewise_linear_mlp_trace,
    segment_losses,
    wei_schwab_trace_network,
)
from hessbench.models import mlp
from tests.experiment_helpers import record

CPU = torch.device("cpu")
TINY = {"n_samples": 60, "hidden": [8], "batch_size": 10, "epochs": 12, "early_epochs": 3,
        "checkpoint_epochs": 3, "project_max_steps": 200}


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


def test_segment_losses_interpolate_the_parameters() -> None:
    """A segment from a net to itself has its loss everywhere; to a shifted copy, the loss
    at t = i / (points + 1) is the loss of the mixed parameters."""
    model, loss_fn, x, y = _problem([3])
    same = segment_losses(model, model, loss_fn, x, y, 4)
    assert same == pytest.approx([loss_fn(model(x), y).item()] * 4, rel=1e-14)
    other = copy.deepcopy(model)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.3)
    mid = copy.deepcopy(model)
    with torch.no_grad():
        for p in mid.parameters():
            p.add_(0.15)
    assert segment_losses(model, other, loss_fn, x, y, 1)[0] == pytest.approx(
        loss_fn(mid(x), y).item(), rel=1e-12)


@pytest.mark.parametrize("continue_with", ["sgd", "gd"])
def test_tiny_run_returns_declared_metrics_and_draws(continue_with: str) -> None:
    params = {**TINY, "continue_with": continue_with}
    m = wei_schwab_trace_network(params, 0, CPU).metrics
    exp = REGISTRY["wei_schwab_trace_network"]
    assert set(m) == exp.metrics
    assert m["steps"] == [18, 36, 54, 72]  # 6 steps per epoch, from epoch 3 every 3 epochs
    assert len(m["epoch_losses"]) == 12 and m["loss_min"] == min(m["epoch_losses"])
    assert m["loss_floor"] < m["loss_min"]
    # every projection ends below SGD's minimal loss, or is counted
    assert m["not_projected"] == sum(not v < m["loss_min"] for v in m["projection_loss"])
    assert len(m["segment_max_excess_ratio"]) == len(m["steps"]) - 1
    assert exp.figure([record(wei_schwab_trace_network(params, 0, CPU), params, 0)]).axes


def test_the_gd_continuation_shares_the_early_phase() -> None:
    """Both paths are the same SGD run up to the end of the early phase, so the projection of
    their first checkpoint is the same point."""
    sgd = wei_schwab_trace_network(TINY, 0, CPU).metrics
    gd = wei_schwab_trace_network({**TINY, "continue_with": "gd"}, 0, CPU).metrics
    assert sgd["epoch_losses"][:3] == gd["epoch_losses"][:3]
    assert sgd["epoch_losses"][3:] != gd["epoch_losses"][3:]


def test_unknown_param_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown params"):
        wei_schwab_trace_network({"hiden": [4]}, 0, CPU)


@pytest.mark.parametrize("bad, match", [({"continue_with": "adam"}, "continue_with"),
                                        ({"early_epochs": 0}, "early_epochs"),
                                        ({"checkpoint_epochs": 6}, "fewer than 3"),
                                        ({"batch_size": 7}, "divide")])
def test_bad_protocol_is_rejected(bad: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        wei_schwab_trace_network({**TINY, **bad}, 0, CPU)
