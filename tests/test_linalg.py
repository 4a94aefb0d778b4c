"""Algorithms against exact references: dense eigendecompositions (torch.linalg.eigvalsh)
and statistical tests with fixed seeds and stated confidence."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import hessbench as hb
from hessbench.models import mlp
from tests.reference import random_symmetric

F64 = torch.float64


def _expected(ev: np.ndarray, k: int, which: str) -> np.ndarray:
    if which == "LA":
        return ev[::-1][:k]
    if which == "SA":
        return ev[:k]
    top = (k + 1) // 2
    return np.sort(np.concatenate([ev[:k - top], ev[len(ev) - top:]]))


@pytest.mark.parametrize("which", ["LA", "SA", "BE"])
@pytest.mark.parametrize("n,k", [(6, 3), (80, 5), (300, 10)])
def test_eigsh_matches_eigvalsh_on_dense(n, k, which):
    A = random_symmetric(n, seed=n)
    ev = torch.linalg.eigvalsh(A).numpy()
    r = hb.eigsh(A, k=k, which=which, tol=1e-10)
    assert r.converged
    ref = _expected(ev, k, which)
    assert np.max(np.abs(r.values - ref) / np.abs(ref)) <= 1e-8
    # the reported residuals are the true ones
    true = torch.linalg.vector_norm(A @ r.vectors - r.vectors * torch.as_tensor(r.values), dim=0)
    assert np.allclose(r.residuals, true.numpy(), rtol=1e-3, atol=1e-12)
    assert torch.allclose(r.vectors.T @ r.vectors, torch.eye(k, dtype=F64), atol=1e-10)


def test_eigsh_on_a_hessian_operator_matches_dense():
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, 6, generator=gen, dtype=F64), torch.randint(0, 3, (40,), generator=gen)
    op = hb.hessian(mlp(6, [8], 3, activation="tanh", dtype=F64), nn.CrossEntropyLoss(), (x, y))
    ev = np.sort(torch.linalg.eigvalsh(op.dense()).numpy())
    for which in ("LA", "SA"):
        r = hb.eigsh(op, k=4, which=which, tol=1e-10)
        ref = _expected(ev, 4, which)
        assert np.max(np.abs(r.values - ref) / np.abs(ref)) <= 1e-8


def test_eigsh_restarts_with_a_small_basis():
    spec = np.concatenate([[10.0, 9.0, 8.5, 8.0, 7.9], np.linspace(0, 5, 495)])
    A = random_symmetric(500, seed=1, spectrum=spec)
    r = hb.eigsh(A, k=5, tol=1e-9, basis_size=15)
    assert r.converged and r.matvecs > 15
    assert np.allclose(r.values, spec[:5], rtol=1e-8)


@pytest.mark.parametrize("which", ["LA", "SA", "BE"])
def test_eigsh_restarts_in_column_chunks_keep_an_orthonormal_basis(monkeypatch, which):
    """Thick restarts that rotate the basis a few columns at a time (chunk 7 of n = 60):
    eigenvalues as eigvalsh, Ritz vectors orthonormal and eigenvectors, to 1e-10."""
    from hessbench import linalg

    monkeypatch.setattr(linalg, "ROTATE_CHUNK", 7)
    A = random_symmetric(60, seed=3)
    r = hb.eigsh(A, k=4, which=which, basis_size=10, tol=1e-12, seed=1)
    assert r.converged
    exact = torch.linalg.eigvalsh(A).numpy()
    want = {"LA": exact[-4:][::-1], "SA": exact[:4], "BE": np.r_[exact[:2], exact[-2:][::-1]]}
    np.testing.assert_allclose(np.sort(r.values), np.sort(want[which]), atol=1e-10)
    Y = r.vectors
    torch.testing.assert_close(Y.T @ Y, torch.eye(4, dtype=torch.float64), atol=1e-10, rtol=0)
    torch.testing.assert_close(A @ Y, Y * torch.as_tensor(r.values), atol=1e-10, rtol=0)


def test_rotate_rows_is_the_product_chunk_by_chunk(monkeypatch):
    """_rotate_rows(V, j, Y): V[:p] = Y^T V[:j] in place, whatever the chunking; the rows
    from p on stay."""
    from hessbench import linalg

    gen = torch.Generator().manual_seed(0)
    V = torch.randn(6, 23, generator=gen, dtype=torch.float64)
    Y = torch.randn(5, 3, generator=gen, dtype=torch.float64)
    want = V.clone()
    want[:3] = Y.T @ V[:5]
    for chunk in (1, 4, 23, 100):
        monkeypatch.setattr(linalg, "ROTATE_CHUNK", chunk)
        got = V.clone()
        linalg._rotate_rows(got, 5, Y)
        torch.testing.assert_close(got, want, atol=1e-14, rtol=0)


def test_eigsh_finds_multiple_eigenvalues_of_identity():
    r = hb.eigsh(torch.eye(10, dtype=F64), k=3)
    assert r.converged and np.allclose(r.values, 1.0)


def test_eigsh_reports_non_convergence():
    A = random_symmetric(400, seed=2, spectrum=np.linspace(1, 1.001, 400))   # no gap: hard
    with pytest.warns(hb.ConvergenceWarning, match="not converged"):
        r = hb.eigsh(A, k=5, tol=1e-12, max_matvecs=40)
    assert not r.converged and r.matvecs <= 40
    with pytest.raises(hb.NotConvergedError):
        hb.eigsh(A, k=5, tol=1e-12, max_matvecs=40, on_unconverged="raise")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not hb.eigsh(A, k=5, tol=1e-12, max_matvecs=40, on_unconverged="ignore").converged


def test_eigsh_bad_arguments():
    A = random_symmetric(5, 0)
    with pytest.raises(ValueError, match="k must be"):
        hb.eigsh(A, k=5)
    with pytest.raises(ValueError, match="k must be"):
        hb.eigsh(A, k=0)
    with pytest.raises(ValueError, match="which"):
        hb.eigsh(A, k=2, which="LM")
    with pytest.raises(ValueError, match="tol"):
        hb.eigsh(A, k=2, tol=0)
    with pytest.raises(ValueError, match="on_unconverged"):
        hb.eigsh(A, k=2, on_unconverged="shrug")


def test_eigsh_same_seed_same_result():
    A = random_symmetric(100, 3)
    a, b = hb.eigsh(A, k=3, seed=7), hb.eigsh(A, k=3, seed=7)
    assert np.array_equal(a.values, b.values) and a.matvecs == b.matvecs


@given(n=st.integers(8, 40), seed=st.integers(0, 10_000), shift=st.floats(-5, 5),
       k=st.integers(1, 3))
def test_property_eigen_relations(n, seed, shift, k):
    A = random_symmetric(n, seed)
    r = hb.eigsh(A, k=k, tol=1e-10)
    # eigen-relation and the Ritz values bound every Rayleigh quotient from above
    assert float(torch.linalg.vector_norm(A @ r.vectors - r.vectors * torch.as_tensor(r.values))) \
        <= 1e-7 * float(torch.linalg.matrix_norm(A, 2))
    z = torch.randn(n, 5, generator=torch.Generator().manual_seed(seed), dtype=F64)
    rayleigh = ((z * (A @ z)).sum(0) / (z * z).sum(0)).numpy()
    assert np.all(rayleigh <= r.values[0] + 1e-10)
    # shift invariance: eig(A + c I) = eig(A) + c
    shifted = hb.eigsh(A + shift * torch.eye(n, dtype=F64), k=k, tol=1e-10)
    assert np.allclose(shifted.values, r.values + shift, atol=1e-8 * (1 + abs(shift)))
    # exact trace is the sum of the eigenvalues
    assert math.isclose(hb.trace(A, method="exact").value, float(torch.trace(A)), abs_tol=1e-10 * n)


def test_power_iteration_parity_and_honest_residuals():
    spec = np.concatenate([[5.0, 3.0], np.linspace(0, 1, 98)])
    A = random_symmetric(100, seed=4, spectrum=spec)
    tight = hb.power_iteration(A, k=1, tol=1e-10, max_iter=500, criterion="residual")
    assert tight.converged and tight.residuals[0] <= 5e-10
    assert math.isclose(tight.values[0], 5.0, rel_tol=1e-12)
    loose = hb.power_iteration(A, k=2, tol=1e-3, criterion="eigenvalue")
    assert loose.converged and np.allclose(loose.values, [5.0, 3.0], rtol=1e-2)
    # PyHessian's criterion stops early; the reported residual shows it
    assert loose.residuals[0] > 100 * tight.residuals[0]
    true = torch.linalg.vector_norm(A @ loose.vectors - loose.vectors * torch.as_tensor(loose.values), dim=0)
    assert np.allclose(loose.residuals, true.numpy(), rtol=1e-10)


# ------------------------------------------------------------------ trace

SPEC = np.concatenate([np.geomspace(100, 5, 10), np.linspace(0.0, 1.0, 190)])


@pytest.mark.parametrize("method", ["hutchinson", "hutch++"])
def test_trace_estimators_are_unbiased(method):
    """Mean of 200 independent estimates (fixed seeds) is within 4 standard errors of
    tr(A): a 99.99% two-sided z-interval, so this fails only for a real bias."""
    A = random_symmetric(200, seed=5, spectrum=SPEC)
    est = np.array([hb.trace(A, method=method, num_matvecs=30, seed=s).value for s in range(200)])
    assert abs(est.mean() - SPEC.sum()) <= 4 * est.std(ddof=1) / math.sqrt(len(est))


@pytest.mark.parametrize("method", ["hutchinson", "hutch++"])
def test_trace_stderr_matches_spread_over_seeds(method):
    """The reported stderr tracks the true spread: median over seeds within a factor 1.5
    of the empirical standard deviation of the estimates."""
    A = random_symmetric(200, seed=6, spectrum=SPEC)
    res = [hb.trace(A, method=method, num_matvecs=60, seed=s) for s in range(100)]
    spread = np.std([r.value for r in res], ddof=1)
    assert 1 / 1.5 <= np.median([r.stderr for r in res]) / spread <= 1.5


def test_hutchpp_beats_hutchinson_with_outliers():
    A = random_symmetric(200, seed=7, spectrum=SPEC)
    err = {m: np.median([abs(hb.trace(A, method=m, num_matvecs=60, seed=s).value - SPEC.sum())
                         for s in range(50)]) for m in ("hutchinson", "hutch++")}
    assert err["hutch++"] < err["hutchinson"] / 3


def test_trace_target_error_and_budget():
    A = random_symmetric(200, seed=8, spectrum=SPEC)
    r = hb.trace(A, method="hutchinson", num_matvecs=2000, target_rel_error=0.05, seed=0)
    assert r.converged and r.stderr <= 0.05 * abs(r.value) and r.matvecs < 2000
    with pytest.warns(hb.ConvergenceWarning, match="above target"):
        bad = hb.trace(A, method="hutchinson", num_matvecs=20, target_rel_error=1e-6, seed=0)
    assert not bad.converged and bad.matvecs == 20


def test_trace_exact_and_bad_arguments():
    A = random_symmetric(30, seed=9)
    assert math.isclose(hb.trace(A, method="exact").value, float(torch.trace(A)), abs_tol=1e-10)
    with pytest.raises(ValueError, match="method"):
        hb.trace(A, method="guess")
    with pytest.raises(ValueError, match="num_matvecs"):
        hb.trace(A, method="hutch++", num_matvecs=2)


# ------------------------------------------------------------------ SLQ / spectrum


def test_slq_weights_density_and_moments():
    A = random_symmetric(200, seed=10, spectrum=SPEC)
    d = hb.spectral_density(A, num_probes=30, lanczos_steps=40, seed=0)
    assert np.allclose(d.weights.sum(1), 1.0, atol=1e-12)
    grid = np.linspace(-20, 130, 30001)
    assert abs(np.trapezoid(d.density(grid, sigma=0.5), grid) - 1.0) <= 1e-6
    # first two moments: tr(A)/n, tr(A^2)/n within 4 standard errors of the probe mean
    for p in (1, 2):
        per_probe = np.sum(d.weights * d.nodes ** p, axis=1)
        exact = np.sum(SPEC ** p) / 200
        assert abs(per_probe.mean() - exact) <= 4 * per_probe.std(ddof=1) / math.sqrt(30)
        assert math.isclose(d.moment(p), per_probe.mean())


def test_slq_full_krylov_space_recovers_eigenvalues():
    spec = np.linspace(-1, 3, 12)
    d = hb.spectral_density(random_symmetric(12, seed=11, spectrum=spec), num_probes=2, lanczos_steps=50)
    for nodes, weights in zip(d.nodes, d.weights):
        assert np.allclose(np.sort(nodes[weights > 1e-12]), spec, atol=1e-10)


def test_spectrum_matches_eigvalsh_and_refuses_large():
    A = random_symmetric(50, seed=12)
    assert np.allclose(hb.spectrum(A), torch.linalg.eigvalsh(A).numpy(), atol=1e-12)
    with pytest.raises(MemoryError, match="eigsh"):
        hb.spectrum(A, max_memory_bytes=100)
