"""hessbench.minimize: L-BFGS to a stated gradient norm, against closed forms."""
from __future__ import annotations

import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from hessbench import ConvergenceWarning, NotConvergedError
from hessbench.minimize import _truncated_cg, grad_norm, minimize

F64 = torch.float64


def _least_squares(seed: int, n: int = 40, d: int = 6) -> tuple[nn.Module, torch.Tensor,
                                                                 torch.Tensor]:
    """L(w) = mean((X w - y)^2): a convex quadratic with Hessian 2 X^T X / n."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen, dtype=F64) * torch.linspace(0.2, 3.0, d, dtype=F64)
    y = torch.randn(n, 1, generator=gen, dtype=F64)
    model = nn.Linear(d, 1, bias=False).to(F64)
    with torch.no_grad():
        model.weight.copy_(torch.randn(1, d, generator=gen, dtype=F64))
    return model, x, y


@settings(max_examples=10)
@given(seed=st.integers(0, 10_000))
def test_reaches_closed_form_least_squares_minimum(seed: int) -> None:
    model, x, y = _least_squares(seed)
    res = minimize(model, nn.MSELoss(), x, y, grad_tol=1e-10, max_iter=200)
    w_star = torch.linalg.lstsq(x, y).solution.reshape(-1)
    lam_min = float(torch.linalg.eigvalsh(2 * x.T @ x / len(x))[0])
    assert res.converged and res.stopped == "grad_tol" and res.grad_norm <= 1e-10
    # ||w - w*|| <= ||grad|| / lambda_min for a quadratic; 1.01 for rounding
    assert float((model.weight.detach().reshape(-1) - w_star).norm()) <= 1.01e-10 / lam_min
    loss, norm = grad_norm(model, nn.MSELoss(), x, y)  # the reported numbers are the point's
    assert (loss, norm) == (pytest.approx(res.loss, rel=1e-12), pytest.approx(res.grad_norm))
    assert all(p.grad is None for p in model.parameters())


def test_newton_cg_alone_solves_a_quadratic() -> None:
    """Inexact Newton on a quadratic: each CG solve ends within d = 6 products."""
    model, x, y = _least_squares(5)
    res = minimize(model, nn.MSELoss(), x, y, grad_tol=1e-11, max_iter=0, cg_max_iter=50)
    w_star = torch.linalg.lstsq(x, y).solution.reshape(-1)
    assert res.converged and res.iterations == 0 and 1 <= res.newton_steps <= 10
    assert res.hvps <= 6 * res.newton_steps
    assert torch.allclose(model.weight.detach().reshape(-1), w_star, rtol=0, atol=1e-10)


def test_truncated_cg_stops_at_negative_curvature() -> None:
    g = torch.tensor([1.0, 0.1], dtype=F64)
    h = torch.diag(torch.tensor([1.0, -300.0], dtype=F64))  # g^T H g < 0: fall back to -g
    d, used = _truncated_cg(lambda v: h @ v, g, 1e-12, 10)
    assert used == 1 and torch.equal(d, -g)
    h = torch.diag(torch.tensor([4.0, -0.1], dtype=F64))  # negative only in the 2nd direction
    d, used = _truncated_cg(lambda v: h @ v, g, 1e-12, 10)
    assert used == 2 and torch.allclose(d, -g * (g @ g) / (g @ h @ g), rtol=1e-14, atol=0)


class _Rosenbrock(nn.Module):
    """(1 - a)^2 + 100 (b - a^2)^2 for every input row: minimum at (1, 1), non-convex."""

    def __init__(self) -> None:
        super().__init__()
        self.ab = nn.Parameter(torch.tensor([-1.2, 1.0], dtype=F64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.ab
        return ((1 - a) ** 2 + 100 * (b - a ** 2) ** 2).expand(len(x))


def test_nonconvex_rosenbrock_reaches_its_closed_form_minimum() -> None:
    x, y = torch.zeros(3, 1, dtype=F64), torch.zeros(3, dtype=F64)
    model = _Rosenbrock()
    res = minimize(model, lambda out, t: out.mean(), x, y, grad_tol=1e-12, max_iter=500)
    # Hessian at (1, 1): [[802, -400], [-400, 200]], lambda_min = 0.399
    assert res.converged and res.grad_norm <= 1e-12
    assert float((model.ab.detach() - 1).norm()) <= 1.01e-12 / 0.399


def test_budget_exhausted_is_reported_by_policy() -> None:
    model, x, y = _least_squares(1)
    start = model.weight.detach().clone()
    with pytest.warns(ConvergenceWarning, match="grad_tol"):
        res = minimize(model, nn.MSELoss(), x, y, grad_tol=1e-12, max_iter=2, check_every=1,
                       newton_max_steps=0)
    assert not res.converged and res.stopped == "max_iter" and res.iterations == 2
    assert res.grad_norm > 1e-12
    model.weight.data.copy_(start)
    with pytest.raises(NotConvergedError):
        minimize(model, nn.MSELoss(), x, y, grad_tol=1e-12, max_iter=2, newton_max_steps=0,
                 on_unconverged="raise")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not minimize(model, nn.MSELoss(), x, y, grad_tol=1e-12, max_iter=2,
                            newton_max_steps=0, on_unconverged="ignore").converged


def test_zero_budget_measures_without_moving() -> None:
    model, x, y = _least_squares(2)
    start = model.weight.detach().clone()
    res = minimize(model, nn.MSELoss(), x, y, grad_tol=1e-12, max_iter=0, newton_max_steps=0,
                   on_unconverged="ignore")
    assert torch.equal(model.weight.detach(), start) and res.iterations == res.hvps == 0
    assert (res.loss, res.grad_norm) == grad_norm(model, nn.MSELoss(), x, y)


class _Abs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor([0.7, -0.3], dtype=F64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.w).abs().sum(dim=1)


def test_nonsmooth_minimum_is_not_reported_as_converged() -> None:
    """L(w) = |w_1| + |w_2| has its minimum at a kink: ||grad L|| = sqrt(2) wherever it exists."""
    x, y = torch.ones(1, 2, dtype=F64), torch.zeros(1, dtype=F64)
    res = minimize(_Abs(), lambda out, t: (out - t).mean(), x, y, grad_tol=1e-8,
                   max_iter=300, on_unconverged="ignore")
    assert not res.converged and res.stopped in ("stalled", "max_iter")
    assert res.loss < 1.0 and res.grad_norm > 1e-8


@pytest.mark.parametrize("kwargs, match", [
    ({"grad_tol": 0.0}, "grad_tol"), ({"grad_tol": -1.0}, "grad_tol"),
    ({"grad_tol": 1e-6, "max_iter": -1}, "max_iter"),
    ({"grad_tol": 1e-6, "check_every": 0}, "check_every"),
    ({"grad_tol": 1e-6, "on_unconverged": "loud"}, "on_unconverged"),
])
def test_bad_arguments_are_rejected(kwargs: dict, match: str) -> None:
    model, x, y = _least_squares(3)
    with pytest.raises(ValueError, match=match):
        minimize(model, nn.MSELoss(), x, y, **kwargs)


def test_bad_problems_are_rejected() -> None:
    model, x, y = _least_squares(4)
    with pytest.raises(ValueError, match="empty"):
        minimize(model, nn.MSELoss(), x[:0], y[:0], grad_tol=1e-6)
    model.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable"):
        minimize(model, nn.MSELoss(), x, y, grad_tol=1e-6)
    model.requires_grad_(True)
    with torch.no_grad():
        model.weight.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="non-finite"):
        minimize(model, nn.MSELoss(), x, y, grad_tol=1e-6)
