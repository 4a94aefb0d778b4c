"""Wei & Schwab Fig. 3 experiment: its pieces against references, and a tiny end-to-end run."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import functional_call, hessian

from hessbench.data import digits
from hessbench.experiments.registry import REGISTRY
from hessbench.experiments.wei_schwab_network import (_exact_trace, _project, _slope_per_1000,
                                                      wei_schwab_trace_network)
from hessbench.models import mlp
from hessbench.training import full_loss

CPU = torch.device("cpu")
TINY = {"n_samples": 60, "hidden": [4], "gd_steps": 60, "interval": 15, "checkpoints": 2,
        "batch_size": 10, "project_max_steps": 200}


def _problem():
    x, y = digits(60, seed=1, dtype=torch.float64)
    model = mlp(64, [3], 10, seed=2, dtype=torch.float64)
    return model, nn.CrossEntropyLoss(label_smoothing=0.1), x, y


def test_exact_trace_matches_dense_autograd_hessian() -> None:
    model, loss_fn, x, y = _problem()
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    flat0 = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def loss(flat: torch.Tensor) -> torch.Tensor:
        parts = torch.split(flat, [s.numel() for s in shapes])
        tree = {n: t.reshape(s) for n, t, s in zip(names, parts, shapes)}
        return loss_fn(functional_call(model, tree, (x,)), y)

    want = torch.diagonal(hessian(loss)(flat0)).sum().item()
    assert _exact_trace(model, loss_fn, (x, y)) == pytest.approx(want, rel=1e-10)


def test_projection_gets_below_target_or_says_so() -> None:
    model, loss_fn, x, y = _problem()
    start = full_loss(model, loss_fn, x, y)
    p = {"lr": 0.5, "project_max_steps": 500, "project_eval_every": 5}
    proj, steps, ok = _project(model, loss_fn, x, y, p, start - 1e-3)
    assert ok and steps > 0 and full_loss(proj, loss_fn, x, y) < start - 1e-3
    assert full_loss(model, loss_fn, x, y) == start  # the original is untouched
    assert _project(model, loss_fn, x, y, p, start + 1.0)[1:] == (0, True)
    assert _project(model, loss_fn, x, y, {**p, "project_max_steps": 5}, 0.0)[2] is False


def test_slope_per_1000_steps_of_a_line() -> None:
    assert _slope_per_1000([0, 500, 1000, 2000], [3.0, 2.5, 2.0, 1.0]) == pytest.approx(-1.0)


def test_tiny_run_returns_declared_metrics_and_draws() -> None:
    m = wei_schwab_trace_network(TINY, 0, CPU)
    exp = REGISTRY["wei_schwab_trace_network"]
    assert set(m.metrics) == exp.metrics
    assert m.metrics["steps"] == [0, 15, 30]
    assert m.metrics["sgd_trace"][0] == m.metrics["gd_trace"][0]  # both start at theta*
    assert len(m.metrics["sgd_trace"]) == len(m.metrics["gd_projection_steps"]) == 3
    record = {"point": {}, "params": TINY, "seed": 0, "metrics": m.metrics, "figure_data": {}}
    assert exp.figure([record, {**record, "seed": 1}]).axes


def test_unknown_param_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown params"):
        wei_schwab_trace_network({"hiden": [4]}, 0, CPU)
