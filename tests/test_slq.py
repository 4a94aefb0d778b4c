"""Stochastic Lanczos quadrature against exact densities of dense float64 matrices.

For a diagonal matrix every Rademacher probe v = z / sqrt(n) has v_i^2 = 1/n, so each
probe's Gauss rule must reproduce the exact moments tr(A^q) / n for q < 2 * steps, and
with steps = n the exact eigenvalues with weights 1/n: references that do not depend on
the probes drawn.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import hessbench as hb
from hessbench.models import mlp

F64 = torch.float64
SPEC = np.concatenate([np.geomspace(40, 5, 6), np.linspace(-1.0, 1.0, 194)])


def _diag(spec: np.ndarray) -> torch.Tensor:
    return torch.diag(torch.as_tensor(spec, dtype=F64))


def test_gauss_rule_reproduces_exact_moments_of_each_probe():
    """Degree < 2 * steps is integrated exactly: relative error <= 1e-9 of the mean
    |lambda|^q (float64 Lanczos with full reorthogonalisation, 12 steps: rounding errors
    ~ steps * eps * |lambda|max^q, far below that)."""
    steps = 12
    d = hb.spectral_density(_diag(SPEC), num_probes=5, lanczos_steps=steps, seed=3)
    assert d.nodes.shape == d.weights.shape == (5, steps)
    for q in range(2 * steps):
        exact = np.mean(SPEC ** q)
        per_probe = np.sum(d.weights * d.nodes ** q, axis=1)
        assert np.all(np.abs(per_probe - exact) <= 1e-9 * np.mean(np.abs(SPEC) ** q)), q


def test_full_krylov_space_gives_the_exact_density():
    """steps = n: nodes = eigenvalues, weights = 1/n, so the broadened density equals
    (1/n) sum_i N(x; lambda_i, sigma^2) up to rounding (1e-9 of its peak)."""
    spec = np.linspace(-2.0, 3.0, 40)
    d = hb.spectral_density(_diag(spec), num_probes=3, lanczos_steps=40, seed=1)
    for nodes, weights in zip(d.nodes, d.weights):
        order = np.argsort(nodes)
        assert np.allclose(nodes[order], spec, atol=1e-10)
        assert np.allclose(weights[order], 1 / 40, atol=1e-10)
    grid, sigma = np.linspace(-3, 4, 701), 0.1
    exact = np.exp(-0.5 * ((grid[:, None] - spec) / sigma) ** 2).sum(1) / (
        40 * sigma * math.sqrt(2 * math.pi))
    assert np.max(np.abs(d.density(grid, sigma) - exact)) <= 1e-9 * exact.max()


def test_no_ghost_copies_of_converged_eigenvalues():
    """Long runs past convergence of the outliers: without reorthogonalisation the
    largest eigenvalue reappears as spurious copies (8 per probe here at 100 steps);
    with it each Ritz value near lambda_max = 40 appears exactly once."""
    d = hb.spectral_density(_diag(SPEC), num_probes=2, lanczos_steps=100, seed=0)
    assert [int(np.sum(np.abs(nodes - 40.0) < 1e-6)) for nodes in d.nodes] == [1, 1]


def test_invariant_subspace_stops_the_probe_and_its_products():
    """Three distinct eigenvalues: each probe's Krylov space has dimension 3, so after 3
    products it takes no more; the rule holds the eigenvalues with weight multiplicity / n
    and zero-weight padding."""
    spec = np.repeat([-1.0, 0.5, 2.0], [10, 20, 30])
    d = hb.spectral_density(_diag(spec), num_probes=4, lanczos_steps=20, seed=0)
    assert d.matvecs == 4 * 3
    for nodes, weights in zip(d.nodes, d.weights):
        keep = weights > 1e-12
        assert keep.sum() == 3
        assert np.allclose(np.sort(nodes[keep]), [-1.0, 0.5, 2.0], atol=1e-10)
        assert np.allclose(weights[keep][np.argsort(nodes[keep])], [1 / 6, 1 / 3, 1 / 2],
                           atol=1e-10)


def test_hessian_operator_full_space_nodes_are_eigenvalues():
    """On a float64 Hessian operator (n = 83) with steps = n every node of non-negligible
    weight is an eigenvalue of the dense Hessian (to 1e-8 of the spectral radius), and
    the weights of each probe sum to 1."""
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, 6, generator=gen, dtype=F64), torch.randint(0, 3, (40,), generator=gen)
    op = hb.hessian(mlp(6, [8], 3, activation="tanh", dtype=F64), nn.CrossEntropyLoss(), (x, y))
    ev = torch.linalg.eigvalsh(op.dense()).numpy()
    d = hb.spectral_density(op, num_probes=2, lanczos_steps=op.num_params, seed=0)
    radius = np.abs(ev).max()
    assert np.allclose(d.weights.sum(1), 1.0, atol=1e-12)
    for nodes, weights in zip(d.nodes, d.weights):
        heavy = nodes[weights > 1e-8]
        assert np.all(np.min(np.abs(heavy[:, None] - ev[None, :]), axis=1) <= 1e-8 * radius)


def test_float32_operator_runs_in_float64_recurrences():
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(30, 5, generator=gen), torch.randint(0, 2, (30,), generator=gen)
    op = hb.hessian(mlp(5, [6], 2, activation="tanh"), nn.CrossEntropyLoss(), (x, y))
    d = hb.spectral_density(op, num_probes=3, lanczos_steps=10, seed=0)
    assert d.nodes.dtype == np.float64 and np.allclose(d.weights.sum(1), 1.0, atol=1e-10)
    exact = float(torch.trace(op.dense().to(F64))) / op.num_params
    per_probe = np.sum(d.weights * d.nodes, axis=1)   # v^T A v: Hutchinson samples of tr/n
    assert abs(per_probe.mean() - exact) <= 4 * per_probe.std(ddof=1) / math.sqrt(3) + 1e-6


def test_same_seed_same_density_other_seed_other_probes():
    """Reproducible per seed; on a rotated (non-diagonal) matrix the probes, and so the
    rules, differ between seeds."""
    gen = torch.Generator().manual_seed(2)
    Q = torch.linalg.qr(torch.randn(200, 200, generator=gen, dtype=F64)).Q
    A = Q @ _diag(SPEC) @ Q.T
    a, b = (hb.spectral_density(A, num_probes=3, lanczos_steps=15, seed=5) for _ in range(2))
    assert np.array_equal(a.nodes, b.nodes) and np.array_equal(a.weights, b.weights)
    c = hb.spectral_density(A, num_probes=3, lanczos_steps=15, seed=6)
    assert not np.allclose(a.weights, c.weights)


@pytest.mark.parametrize("kwargs,match", [({"num_probes": 0}, "num_probes"),
                                          ({"lanczos_steps": 0}, "lanczos_steps")])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        hb.spectral_density(_diag(SPEC), **kwargs)
