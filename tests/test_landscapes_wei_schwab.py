"""Wei & Schwab valley toys: closed-form derivatives against torch.autograd (float64)."""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings, strategies as st

from hessbench.landscapes import (TRACE_LOGDET_TRADEOFF, WEI_SCHWAB_ABS, WEI_SCHWAB_EXP, ValleyToy,
                                  valley_floor_logdet, valley_floor_trace, valley_gradient,
                                  valley_hessian, valley_loss)

TOYS = [WEI_SCHWAB_ABS, WEI_SCHWAB_EXP, TRACE_LOGDET_TRADEOFF]
REL = 1e-12  # float64 closed form vs autograd: only rounding differs
coord = st.floats(-2.0, 2.0, allow_nan=False)


def _scalar_loss(toy: ValleyToy):
    return lambda th: valley_loss(toy, th[None])[0]


def _assert_close(got: torch.Tensor, want: torch.Tensor) -> None:
    scale = max(want.abs().max().item(), 1.0)
    assert (got - want).abs().max().item() <= REL * scale, (got, want)


def _off_kinks(toy: ValleyToy, theta: torch.Tensor) -> bool:
    """The abs toy is differentiable only off the kinks t3 + t4 = 0, t3 + 2 t4 = 0."""
    if toy is not WEI_SCHWAB_ABS:
        return True
    t3, t4 = theta[2].item(), theta[3].item()
    return min(abs(t3 + t4), abs(t3 + 2 * t4)) > 1e-3


@pytest.mark.parametrize("toy", TOYS, ids=lambda t: t.name)
@settings(max_examples=40, deadline=None, derandomize=True)
@given(t=st.tuples(coord, coord, coord, coord))
def test_gradient_and_hessian_match_autograd(toy: ValleyToy, t: tuple[float, ...]) -> None:
    theta = torch.tensor(t[:toy.dim], dtype=torch.float64)
    if not _off_kinks(toy, theta):
        return
    f = _scalar_loss(toy)
    _assert_close(valley_gradient(toy, theta[None])[0], torch.func.grad(f)(theta))
    _assert_close(valley_hessian(toy, theta[None])[0], torch.func.hessian(f)(theta))


@pytest.mark.parametrize("toy", TOYS, ids=lambda t: t.name)
def test_batched_evaluation_equals_rowwise(toy: ValleyToy) -> None:
    gen = torch.Generator().manual_seed(0)
    theta = torch.randn(7, toy.dim, generator=gen, dtype=torch.float64) + 0.5
    h = valley_hessian(toy, theta)
    for b in range(theta.shape[0]):
        _assert_close(h[b], valley_hessian(toy, theta[b:b + 1])[0])


def test_floor_trace_and_logdet_closed_form() -> None:
    y = torch.tensor([[1.0, 1.0], [0.5, -2.0]], dtype=torch.float64)
    # abs toy: a = (|t3 + t4|, |t3 + 2 t4|)
    want = [2 * (2 + 3), 2 * (1.5 + 3.5)]
    assert valley_floor_trace(WEI_SCHWAB_ABS, y).tolist() == pytest.approx(want)
    # exp toy at (1, 1): a = (4 - 2 e^-2, 1); log det = log(2 a1) + log 2
    a1 = 4 - 2 * math.exp(-2.0)
    want = math.log(2 * a1) + math.log(2.0)
    assert valley_floor_logdet(WEI_SCHWAB_EXP, y[:1]).item() == pytest.approx(want, rel=1e-14)


def test_floor_hessian_is_trace_consistent() -> None:
    """On the floor x = 0 the full Hessian's trace equals the floor trace 2 sum a_i."""
    y = torch.tensor([[0.3, 0.9], [1.0, -0.2]], dtype=torch.float64)
    theta = torch.cat([torch.zeros_like(y), y], dim=1)
    for toy in (WEI_SCHWAB_ABS, WEI_SCHWAB_EXP):
        h = valley_hessian(toy, theta)
        _assert_close(torch.diagonal(h, dim1=1, dim2=2).sum(1), valley_floor_trace(toy, y))


def test_logdet_is_nan_where_floor_is_not_a_minimum() -> None:
    y = torch.tensor([[-1.0, -1.0]], dtype=torch.float64)  # a_1 = 4 - 2 e^2 < 0
    assert math.isnan(valley_floor_logdet(WEI_SCHWAB_EXP, y).item())


@pytest.mark.parametrize("bad, err", [(torch.zeros(4), ValueError), (torch.zeros(3, 5), ValueError),
                                      (torch.zeros(3, 4, dtype=torch.int64), TypeError)])
def test_bad_theta_is_rejected(bad: torch.Tensor, err: type) -> None:
    with pytest.raises(err, match="theta"):
        valley_loss(WEI_SCHWAB_ABS, bad)


def test_bad_y_is_rejected() -> None:
    with pytest.raises(ValueError, match="degenerate"):
        valley_floor_trace(WEI_SCHWAB_EXP, torch.zeros(3, 4))


def _floor_gradients(toy: ValleyToy, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    y = y.clone().requires_grad_(True)
    (gt,) = torch.autograd.grad(valley_floor_trace(toy, y).sum(), y)
    y = y.detach().requires_grad_(True)
    (gd,) = torch.autograd.grad(valley_floor_logdet(toy, y).sum(), y)
    return gt, gd


@settings(max_examples=40, deadline=None, derandomize=True)
@given(t3=st.floats(-0.3, 2.0), t4=st.floats(-2.0, 2.0))
def test_exp_toy_trace_and_logdet_gradients_are_aligned_on_the_whole_floor(t3, t4) -> None:
    """Why the printed toy cannot show the selection of Cor. 2.1: grad Tr . grad log det =
    2 (|grad a1|^2 / a1 + |grad a2|^2 / a2) >= 0 (grad a1 is orthogonal to grad a2), so any
    drift lowering one to first order does not raise the other."""
    y = torch.tensor([[t3, t4]], dtype=torch.float64)
    gt, gd = _floor_gradients(WEI_SCHWAB_EXP, y)
    assert (gt * gd).sum().item() >= 0.0


@settings(max_examples=40, deadline=None, derandomize=True)
@given(u=st.floats(-3.0, 0.4))
def test_tradeoff_toy_trace_and_logdet_are_anti_correlated(u) -> None:
    """Tr H = 2 (e^u + 4 e^{-u/2}) falls and log det = log 16 + u/2 rises with u below
    u* = (2/3) ln 2: the two gradients point in opposite directions."""
    y = torch.tensor([[u]], dtype=torch.float64)
    gt, gd = _floor_gradients(TRACE_LOGDET_TRADEOFF, y)
    assert gt.item() == pytest.approx(2 * (math.exp(u) - 2 * math.exp(-u / 2)), rel=1e-12)
    assert gd.item() == pytest.approx(0.5, rel=1e-12)
    assert valley_floor_logdet(TRACE_LOGDET_TRADEOFF, y).item() == pytest.approx(
        math.log(16) + u / 2, rel=1e-12, abs=1e-12)
    assert gt.item() < 0 < gd.item()
