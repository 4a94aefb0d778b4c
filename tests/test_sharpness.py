"""Keskar epsilon-sharpness against closed forms on quadratic losses.

A convex quadratic attains its maximum over a box at a vertex, so for n <= 8 the exact
phi is a brute-force maximum over the 2^n vertices (float64; tolerance 1e-12 relative,
i.e. roundoff).
"""
from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from hessbench.models import mlp
from hessbench.sharpness import epsilon_sharpness
from hessbench.utils import seeded_generator


class _Point(nn.Module):
    """A 'model' whose output is its parameter vector (inputs ignored)."""

    def __init__(self, theta: torch.Tensor):
        super().__init__()
        self.theta = nn.Parameter(theta.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.theta


def _quadratic(a: torch.Tensor, c: torch.Tensor):
    """L(theta) = 1/2 (theta - c)^T A (theta - c), A = a a^T + diag(...) given as matrix."""
    return lambda out, _target: 0.5 * (out - c) @ a @ (out - c)


def _exact_phi(a, c, theta, eps) -> float:
    w = eps * (theta.abs() + 1)
    loss = _quadratic(a, c)
    base = float(loss(theta, None))
    best = max(float(loss(theta + torch.tensor(s, dtype=theta.dtype) * w, None))
               for s in itertools.product([-1.0, 1.0], repeat=theta.numel()))
    return 100 * (best - base) / (1 + base)


_DUMMY = (torch.zeros(1), torch.zeros(1))


@settings(max_examples=30, deadline=None, derandomize=True)
@given(n=st.integers(1, 6), seed=st.integers(0, 1000), eps=st.sampled_from([1e-3, 5e-4, 0.1]))
def test_separable_quadratic_at_its_minimum_is_exact(n, seed, eps):
    """At theta = c with diagonal A every vertex is a maximiser; ascent reaches one."""
    gen = seeded_generator(seed)
    c = torch.randn(n, generator=gen, dtype=torch.float64)
    a = torch.diag(torch.rand(n, generator=gen, dtype=torch.float64) + 0.1)
    res = epsilon_sharpness(_Point(c), _quadratic(a, c), _DUMMY, eps, seed=seed)
    assert res.value == pytest.approx(_exact_phi(a, c, c, eps), rel=1e-12)


@settings(max_examples=30, deadline=None, derandomize=True)
@given(n=st.integers(1, 6), seed=st.integers(0, 1000))
def test_result_is_a_lower_bound_and_nonnegative(n, seed):
    gen = seeded_generator(seed)
    b = torch.randn(n, n, generator=gen, dtype=torch.float64)
    a = b @ b.T
    c, theta = torch.randn(2, n, generator=gen, dtype=torch.float64)
    res = epsilon_sharpness(_Point(theta), _quadratic(a, c), _DUMMY, 0.05, restarts=2, seed=seed)
    assert 0.0 <= res.value <= _exact_phi(a, c, theta, 0.05) * (1 + 1e-12)
    assert res.max_loss >= res.loss


def test_matches_exact_on_a_dense_quadratic_with_restarts():
    """A fixed dense PSD quadratic away from its minimum: 8 restarts find the best vertex."""
    gen = seeded_generator(3)
    b = torch.randn(5, 5, generator=gen, dtype=torch.float64)
    a, (c, theta) = b @ b.T, torch.randn(2, 5, generator=gen, dtype=torch.float64)
    res = epsilon_sharpness(_Point(theta), _quadratic(a, c), _DUMMY, 0.05, restarts=8, seed=0)
    assert res.value == pytest.approx(_exact_phi(a, c, theta, 0.05), rel=1e-12)


def test_seeded_deterministic_and_model_untouched():
    gen = seeded_generator(0)
    x, y = torch.randn(40, 4, generator=gen), torch.randint(0, 3, (40,), generator=gen)
    model = mlp(4, [8], 3, seed=0)
    before = [p.detach().clone() for p in model.parameters()]
    r1 = epsilon_sharpness(model, nn.functional.cross_entropy, (x, y), seed=5)
    r2 = epsilon_sharpness(model, nn.functional.cross_entropy, (x, y), seed=5)
    assert r1 == r2 and r1.value > 0
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before))
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("kwargs, err, match", [
    (dict(epsilon=0.0), ValueError, "epsilon must be > 0"),
    (dict(steps=0), ValueError, "steps and restarts"),
    (dict(restarts=0), ValueError, "steps and restarts"),
    (dict(step_size=-1.0), ValueError, "step_size"),
    (dict(data=torch.zeros(3)), TypeError, "one \\(inputs, targets\\) pair"),
])
def test_bad_input_raises(kwargs, err, match):
    args = dict(data=_DUMMY)
    args.update(kwargs)
    data = args.pop("data")
    with pytest.raises(err, match=match):
        epsilon_sharpness(_Point(torch.zeros(2)), lambda o, t: o.sum(), data, **args)
