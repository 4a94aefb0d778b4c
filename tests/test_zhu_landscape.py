"""The two-basin surface of Zhu et al. App. D.1 against its closed forms."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.func import grad, hessian, vmap

from hessbench import noise
from hessbench.landscapes import (ZHU_FLAT_CENTRE, ZHU_SHARP_CENTRE, zhu_two_basin_grad,
                                  zhu_two_basin_hessian, zhu_two_basin_loss, zhu_two_basin_samples)
from hessbench.utils import seeded_generator

F64 = torch.float64
R2 = 1 / math.sqrt(2)
D1 = np.array([R2, -R2])   # sharp branch's flat direction (Hessian eigenvalue 20)
D2 = np.array([R2, R2])    # sharp branch's sharp direction (200), towards the flat basin
A_SHARP = 10 * np.outer(D1, D1) + 100 * np.outer(D2, D2)   # l = r^T A r near (1, 1)


def mean_loss(w, xs):
    return zhu_two_basin_loss(w, xs).mean()


def test_loss_formula_at_points():
    x = torch.zeros(2, dtype=F64)
    assert float(zhu_two_basin_loss(torch.tensor(ZHU_SHARP_CENTRE, dtype=F64), x)) == 0.0
    assert float(zhu_two_basin_loss(torch.tensor(ZHU_FLAT_CENTRE, dtype=F64), x)) == 0.0
    w = torch.tensor([1.1, 0.95], dtype=F64)
    r = np.array([0.1, -0.05])
    assert float(zhu_two_basin_loss(w, x)) == pytest.approx(r @ A_SHARP @ r, rel=1e-13)
    w = torch.tensor([-0.5, -1.2], dtype=F64)   # flat branch is the smaller one here
    assert float(zhu_two_basin_loss(w, x)) == pytest.approx(0.5 ** 2 + 0.2 ** 2, rel=1e-13)
    with pytest.raises(ValueError, match="size 2"):
        zhu_two_basin_loss(torch.zeros(3), torch.zeros(3))


def test_basin_boundary_on_the_diagonal():
    # along w = (1,1) - s d2 the branches meet where 100 s^2 = (2 sqrt2 - s)^2: s = 2 sqrt2 / 11
    s = 2 * math.sqrt(2) / 11
    x = torch.zeros(2, dtype=F64)
    for ds, flat in ((-1e-6, False), (1e-6, True)):
        w = torch.tensor(np.array([1.0, 1.0]) - (s + ds) * D2, dtype=F64)
        flat_value = float(((w + 1) ** 2).sum())
        assert (float(zhu_two_basin_loss(w, x)) == pytest.approx(flat_value, rel=1e-12)) == flat


def test_hessian_and_sgd_covariance_in_the_sharp_basin_are_closed_form():
    xs = zhu_two_basin_samples(1, 100, generator=seeded_generator(0))[0]
    w = torch.tensor([1.01, 0.99], dtype=F64)
    h = hessian(mean_loss)(w, xs)
    np.testing.assert_allclose(h.numpy(), 2 * A_SHARP, atol=1e-10)
    np.testing.assert_allclose(np.linalg.eigvalsh(h.numpy()), [20.0, 200.0], rtol=1e-12)
    # every sample on the sharp branch: g_i = 2 A (w - x_i - 1), so Sigma_sgd = 4 A cov(x) A exactly
    g = vmap(grad(zhu_two_basin_loss), in_dims=(None, 0))(w, xs)
    cov_x = np.cov(xs.numpy(), rowvar=False, bias=True)
    ref = 4 * A_SHARP @ cov_x @ A_SHARP
    np.testing.assert_allclose(noise.sgd_covariance(g).numpy(), ref, rtol=1e-10)


def test_flat_basin_hessian_is_2i():
    xs = zhu_two_basin_samples(1, 100, generator=seeded_generator(1))[0]
    h = hessian(mean_loss)(torch.tensor([-0.9, -1.05], dtype=F64), xs)
    np.testing.assert_allclose(h.numpy(), 2 * np.eye(2), atol=1e-12)


def test_samples_have_the_stated_covariance():
    n = 200_000
    xs = zhu_two_basin_samples(2, n // 2, generator=seeded_generator(2)).reshape(-1, 2).numpy()
    c, s = math.cos(math.pi / 4), math.sin(math.pi / 4)
    k = np.array([[c, -s], [s, c]])
    ref = 1e-4 * k.T @ np.diag([10.0, 1.0]) @ k
    emp = xs.T @ xs / n
    se = np.sqrt((np.outer(np.diag(ref), np.diag(ref)) + ref ** 2) / n)
    assert np.all(np.abs(emp - ref) <= 4.5 * se)
    assert np.all(np.abs(xs.mean(0)) <= 4.5 * np.sqrt(np.diag(ref) / n))
    # largest spread along (1, -1)/sqrt2, the sharp branch's flat direction
    np.testing.assert_allclose(D1 @ ref @ D1, 1e-3, rtol=1e-12)
    with pytest.raises(ValueError, match="chains >= 1"):
        zhu_two_basin_samples(0, 5, generator=seeded_generator(0))


@pytest.mark.parametrize("theta", [math.pi / 4, 0.3])
def test_closed_form_derivatives_match_autodiff(theta):
    gen = seeded_generator(3)
    xs = zhu_two_basin_samples(50, 20, generator=gen)
    # points spread over both basins and the boundary region
    w = torch.empty(50, 2, dtype=F64).uniform_(-1.5, 1.5, generator=gen)

    def loss(wi, xi):
        return zhu_two_basin_loss(wi, xi, theta)

    auto = noise.FiniteSum.from_loss(loss)
    g = zhu_two_basin_grad(w[:, None, :], xs, theta)
    torch.testing.assert_close(g, auto.per_sample_grads(w, xs), rtol=1e-12, atol=1e-12)
    h = zhu_two_basin_hessian(w[:, None, :], xs, theta).mean(1)
    torch.testing.assert_close(h, auto.hessian(w, xs), rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="size 2"):
        zhu_two_basin_grad(torch.zeros(3), torch.zeros(3))
