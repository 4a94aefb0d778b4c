"""T_alpha (ReLU rescaling) and its Jacobian D, against float64 autograd references.

Tolerances: invariance relative 1e-12 and the Hessian law relative Frobenius 1e-9 in
float64; both are ~1e3-1e6 x the float64 unit roundoff.
"""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from hessbench.models import mlp
from hessbench.symmetries import (count_eigenvalues_above, layer_alphas, layer_sizes,
                                  linear_layers, parameter_scales, rescale, rescaled_hessian)
from hessbench.utils import seeded_generator
from tests.reference import flat_loss, flat_params, rel_err


def _data(n: int = 12, d: int = 5, k: int = 3, seed: int = 0):
    gen = seeded_generator(seed)
    return (torch.randn(n, d, generator=gen, dtype=torch.float64),
            torch.randint(0, k, (n,), generator=gen))


def _hessian(model: nn.Module, x, y) -> torch.Tensor:
    return torch.func.hessian(flat_loss(model, nn.functional.cross_entropy, x, y))(
        flat_params(model))


def _grad(model: nn.Module, x, y) -> torch.Tensor:
    return torch.func.grad(flat_loss(model, nn.functional.cross_entropy, x, y))(
        flat_params(model))


log_alphas = st.lists(st.floats(-3.0, 3.0), min_size=1, max_size=3)


def _alphas_from_logs(logs: list[float]) -> list[float]:
    """Decades for all layers but the last; the last one compensates (product 1)."""
    return [10.0 ** v for v in logs] + [10.0 ** -sum(logs)]


@settings(max_examples=25, deadline=None, derandomize=True)
@given(logs=log_alphas, bias=st.booleans(), seed=st.integers(0, 100))
def test_rescaling_leaves_outputs_unchanged(logs, bias, seed):
    model = mlp(5, [4] * len(logs), 3, bias=bias, seed=seed, dtype=torch.float64)
    x, _ = _data(seed=seed)
    with torch.no_grad():
        out, out_r = model(x), rescale(model, _alphas_from_logs(logs))(x)
    assert float((out_r - out).abs().max() / out.abs().max()) <= 1e-12


@settings(max_examples=15, deadline=None, derandomize=True)
@given(logs=log_alphas, seed=st.integers(0, 100))
def test_scales_are_the_jacobian_of_the_rescaling(logs, seed):
    """T is linear and diagonal, so theta' = d * theta exactly identifies D = diag(d)."""
    model = mlp(5, [4] * len(logs), 3, seed=seed, dtype=torch.float64)
    alphas = _alphas_from_logs(logs)
    d = parameter_scales(model, alphas)
    torch.testing.assert_close(flat_params(rescale(model, alphas)), d * flat_params(model),
                               rtol=1e-15, atol=0.0)


def test_scales_layout_weights_alpha_biases_cumulative():
    model = mlp(2, [3, 3], 2, dtype=torch.float64)
    d = parameter_scales(model, [2.0, 4.0, 0.125])
    expected = ([2.0] * 6 + [2.0] * 3 + [4.0] * 9 + [8.0] * 3 + [0.125] * 6 + [1.0] * 2)
    assert d.tolist() == expected


@pytest.mark.parametrize("hidden, bias", [([6], True), ([4, 4], True), ([4, 3, 4], True),
                                          ([4, 4], False)])
@pytest.mark.parametrize("alpha", [1e-3, 0.3, 50.0])
def test_hessian_transform_law_dense_float64(hidden, bias, alpha):
    """H(T theta) = D^{-1} H(theta) D^{-1} with D = dT/dtheta, at a non-critical theta."""
    model = mlp(5, hidden, 3, bias=bias, seed=1, dtype=torch.float64)
    x, y = _data()
    k = len(hidden) + 1
    alphas = layer_alphas(k, alpha, scaled=list(range(k - 1)), compensate=k - 1)
    d = parameter_scales(model, alphas)
    h, h_r = _hessian(model, x, y), _hessian(rescale(model, alphas), x, y)
    assert rel_err(h_r, rescaled_hessian(h, d)) <= 1e-9
    # the other convention, D H D, is wrong (so this test can fail)
    assert rel_err(h_r, d[:, None] * h * d[None, :]) > 1e-2
    torch.testing.assert_close(_grad(rescale(model, alphas), x, y), _grad(model, x, y) / d,
                               rtol=1e-10, atol=1e-14)


def test_rescale_leaves_the_original_untouched():
    model = mlp(3, [4], 2, dtype=torch.float64)
    before = flat_params(model).clone()
    rescale(model, [10.0, 0.1])
    assert torch.equal(flat_params(model), before)


def test_layer_alphas_schemes():
    a0, a1 = layer_alphas(2, 0.1, scaled=[0], compensate=1)
    assert a0 == 0.1 and math.isclose(a1, 10.0, rel_tol=1e-15)
    a = layer_alphas(4, 1e-2, scaled=[0, 1, 2], compensate=3)
    assert a[:3] == [1e-2] * 3 and math.isclose(math.prod(a), 1.0, rel_tol=1e-14)
    assert layer_alphas(3, 5.0, scaled=[1], compensate=0) == [0.2, 5.0, 1.0]


def test_layer_sizes_counts_weight_and_bias():
    assert layer_sizes(mlp(64, [16, 16], 10)) == [64 * 16 + 16, 16 * 16 + 16, 16 * 10 + 10]


@pytest.mark.parametrize("alphas, match", [
    ([2.0, 2.0], "product of alphas must be 1"),
    ([-1.0, -1.0], "finite and > 0"),
    ([1.0, 1.0, 1.0], "one alpha per Linear layer"),
    ([float("nan"), 1.0], "finite and > 0"),
])
def test_bad_alphas_raise(alphas, match):
    with pytest.raises(ValueError, match=match):
        rescale(mlp(3, [4], 2), alphas)


def test_non_homogeneous_or_non_sequential_models_raise():
    with pytest.raises(TypeError, match="Tanh"):
        linear_layers(mlp(3, [4], 2, activation="tanh"))
    with pytest.raises(TypeError, match="nn.Sequential"):
        linear_layers(nn.Linear(3, 2))
    with pytest.raises(ValueError, match="no nn.Linear"):
        linear_layers(nn.Sequential(nn.ReLU()))


def test_rescaling_a_tanh_net_is_allowed_on_request_and_changes_the_function():
    """homogeneous=False applies the same parameter map to a tanh net (the negative
    control of the symmetry): the scales are the same, the outputs are not."""
    net = mlp(3, [4], 2, activation="tanh", dtype=torch.float64, seed=0)
    relu = mlp(3, [4], 2, dtype=torch.float64, seed=0)
    alphas = [10.0, 0.1]
    assert torch.equal(parameter_scales(net, alphas, homogeneous=False),
                       parameter_scales(relu, alphas))
    x = torch.randn(5, 3, generator=seeded_generator(1), dtype=torch.float64)
    assert rel_err(rescale(relu, alphas)(x), relu(x)) < 1e-14
    assert rel_err(rescale(net, alphas, homogeneous=False)(x), net(x)) > 1e-3


@pytest.mark.parametrize("kwargs, match", [
    (dict(num_layers=1, alpha=0.1, scaled=[0], compensate=0), "at least 2 layers"),
    (dict(num_layers=2, alpha=0.0, scaled=[0], compensate=1), "finite positive"),
    (dict(num_layers=2, alpha=0.1, scaled=[0], compensate=0), "must not be in scaled"),
    (dict(num_layers=2, alpha=0.1, scaled=[0], compensate=2), r"lie in \[0, 2\)"),
    (dict(num_layers=3, alpha=0.1, scaled=[0, 0], compensate=2), "distinct"),
])
def test_layer_alphas_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        layer_alphas(**kwargs)


def test_rescaled_hessian_shape_errors():
    with pytest.raises(ValueError, match="square"):
        rescaled_hessian(torch.zeros(2, 3), torch.ones(2))
    with pytest.raises(ValueError, match="scales must have shape"):
        rescaled_hessian(torch.zeros(2, 2), torch.ones(3))


def _random_symmetric(eigenvalues: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(len(eigenvalues), len(eigenvalues), generator=gen,
                                       dtype=torch.float64))
    return q @ torch.diag(eigenvalues) @ q.T


@settings(max_examples=20, deadline=None, derandomize=True)
@given(seed=st.integers(0, 10_000))
def test_count_above_matches_eigvalsh_when_well_scaled(seed):
    """Coupled, indefinite H with d in [0.5, 2]: plain eigvalsh is accurate; thresholds at
    midpoints between its eigenvalues leave no ambiguity."""
    gen = seeded_generator(seed)
    h = _random_symmetric(torch.randn(12, generator=gen, dtype=torch.float64), gen)
    d = 0.5 + 1.5 * torch.rand(12, generator=gen, dtype=torch.float64)
    ev = torch.linalg.eigvalsh(rescaled_hessian(h, d))
    for i, t in enumerate(((ev[1:] + ev[:-1]) / 2).tolist()):
        assert count_eigenvalues_above(rescaled_hessian(h, d), t, d) == 11 - i


def test_count_above_exact_under_extreme_scaling():
    """Block-diagonal H, one scale per block: eig(D^-1 H D^-1) = eig(H_g) / d_g^2 exactly,
    across 1e-6 .. 1e5 scales and eigenvalues 1e-10 .. 1 (a 1e32 dynamic range)."""
    gen = seeded_generator(7)
    blocks, scales, exact = [], [], []
    for d_g in [1e-6, 1e-3, 1.0, 1e5]:
        lam = 10.0 ** torch.linspace(-10, 0, 6, dtype=torch.float64)
        blocks.append(_random_symmetric(lam, gen))
        scales += [d_g] * 6
        exact += (lam / d_g ** 2).tolist()
    h, d = torch.block_diag(*blocks), torch.tensor(scales, dtype=torch.float64)
    h_r = rescaled_hessian(h, d)
    for t in [3e-15, 3e-3, 3.0, 3e4, 3e7]:  # no eigenvalue within a factor 3
        assert count_eigenvalues_above(h_r, t, d) == sum(v > t for v in exact)


def test_count_above_bad_input():
    with pytest.raises(ValueError, match="scales must all be > 0"):
        count_eigenvalues_above(torch.eye(2), 1.0, torch.tensor([1.0, 0.0]))
    with pytest.raises(ValueError, match="finite"):
        count_eigenvalues_above(torch.eye(2), float("inf"), torch.ones(2))


def test_count_above_exact_on_coupled_graded_matrix_vs_mpmath():
    """Coupled H (eigenvalues 1e-10 .. 1) with interleaved scales 1e-6 .. 1e5: the count
    matches an 80-digit mpmath eigensolve (where a plain float64 eigvalsh of the rescaled
    matrix miscounts at the small thresholds)."""
    mpmath = pytest.importorskip("mpmath")
    gen = seeded_generator(11)
    h = _random_symmetric(10.0 ** torch.linspace(-10, 0, 24, dtype=torch.float64), gen)
    d = torch.tensor([1e5, 1.0, 1e-3, 1e-6] * 6, dtype=torch.float64)
    with mpmath.workdps(80):
        exact = mpmath.eigsy(mpmath.matrix([[mpmath.mpf(h[i, j].item()) / (mpmath.mpf(d[i].item())
                                                                          * mpmath.mpf(d[j].item()))
                                             for j in range(24)] for i in range(24)]),
                             eigvals_only=True)
        exact = [float(e) for e in exact]
    for t in [1e-12, 1e-6, 1e-2, 1e2, 1e6, 1e10]:
        assert count_eigenvalues_above(rescaled_hessian(h, d), t, d) == sum(v > t for v in exact)
