"""Result types: to_dict / from_dict round trips through JSON, short reprs, default
density grid, and op.unflatten of eigenvectors."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

import hessbench as hb
from hessbench.results import MinimizeResult, SharpnessResult, TrainResult


def _sym(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, n, generator=g, dtype=torch.float64)
    return a + a.T


def _net_operator() -> tuple[nn.Module, hb.CurvatureOperator]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    x, y = torch.randn(12, 3), torch.randint(0, 2, (12,))
    return model, hb.hessian(model, nn.CrossEntropyLoss(), (x, y), dtype=torch.float64)


def _results() -> list[object]:
    a = _sym(30)
    return [hb.eigsh(a, k=3), hb.trace(a, method="hutch++", num_matvecs=12),
            hb.spectral_density(a, num_probes=2, lanczos_steps=10),
            MinimizeResult(True, 1e-9, 0.5, 10, 2, 30, 1e-8, "grad_tol"),
            TrainResult(steps=3, losses=[1.0, 0.5, 0.25], final_loss=0.25, stopped="max_steps"),
            SharpnessResult(1.5, 0.1, 0.1015, 1e-3, 10, 2)]


@pytest.mark.parametrize("result", _results(), ids=lambda r: type(r).__name__)
def test_to_dict_round_trips_through_json(result: object) -> None:
    data = json.loads(json.dumps(result.to_dict()))
    assert data["type"] == type(result).__name__
    back = type(result).from_dict(data)
    for name, value in vars(result).items():
        got = getattr(back, name)
        if isinstance(value, torch.Tensor):
            assert isinstance(got, torch.Tensor) and torch.equal(got, value.cpu())
        elif isinstance(value, np.ndarray):
            assert got.dtype == np.float64 and np.array_equal(got, value)
        else:
            assert got == value or (isinstance(value, float) and math.isnan(value))


def test_from_dict_refuses_another_type() -> None:
    data = _results()[1].to_dict()
    with pytest.raises(ValueError, match="the data is a TraceResult"):
        hb.EigResult.from_dict(data)


def test_repr_is_short_without_tensor_dumps() -> None:
    r = hb.eigsh(_sym(400), k=20, tol=1e-4)
    text = repr(r)
    assert len(text) < 300, text
    assert "tensor(400x20, float64, cpu)" in text and "(20 values)" in text
    assert "EigResult(values=[" in text and "converged=True" in text
    assert len(repr(hb.spectral_density(_sym(400), num_probes=3, lanczos_steps=30))) < 150
    assert repr(TrainResult(2, [0.5] * 1000, 0.5, "plateau")).count("0.5") <= 5


def test_density_has_a_default_grid_and_width() -> None:
    d = hb.spectral_density(_sym(60), num_probes=4, lanczos_steps=30)
    grid = d.default_grid()
    assert len(grid) == 1000 and grid[0] < d.nodes.min() and grid[-1] > d.nodes.max()
    assert d.default_sigma() == pytest.approx((d.nodes.max() - d.nodes.min()) / 200)
    assert np.allclose(d.density(), d.density(grid, d.default_sigma()))
    assert float(np.sum(d.density()) * (grid[1] - grid[0])) == pytest.approx(1.0, rel=1e-3)


def test_unflatten_gives_parameter_shaped_views() -> None:
    model, op = _net_operator()
    r = hb.eigsh(op, k=2)
    one = op.unflatten(r.vectors[:, 0])
    assert {k: tuple(v.shape) for k, v in one.items()} == {
        k: tuple(p.shape) for k, p in model.named_parameters()}
    block = op.unflatten(r.vectors)
    assert block["0.weight"].shape == (2, 4, 3)
    assert torch.equal(block["0.weight"][1], op.unflatten(r.vectors[:, 1])["0.weight"])
    flat = torch.cat([t.reshape(-1) for t in one.values()])
    assert torch.equal(flat, r.vectors[:, 0])


def test_unflatten_errors() -> None:
    _, op = _net_operator()
    with pytest.raises(ValueError, match=r"shape \(n,\) or \(n, m\) with n=26, got \(5,\)"):
        op.unflatten(torch.zeros(5))
    with pytest.raises(ValueError, match="no parameter layout"):
        hb.as_operator(_sym(4)).unflatten(torch.zeros(4))
