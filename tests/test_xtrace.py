"""XTrace against exact references: a direct leave-one-out implementation of the paper's
definition, exact traces of dense PSD and indefinite matrices (the net at init), and
properties (exact below the sketch rank, homogeneity, seed reproducibility)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import hessbench as hb
from hessbench.models import mlp
from hessbench.operators import as_operator
from hessbench.utils import seeded_generator
from hessbench.xtrace import sphere_vectors, xtrace_samples
from tests.reference import random_symmetric

F64 = torch.float64
SPEC = np.concatenate([np.geomspace(100, 5, 10), np.linspace(0.0, 1.0, 190)])


def _leave_one_out(A: torch.Tensor, Om: torch.Tensor) -> torch.Tensor:
    """The paper's definition, computed directly: for each i a fresh QR of A Omega without
    column i, then tr(Q^T A Q) + u^T A u with u the normalised projected test vector."""
    n, m = Om.shape
    Y = A @ Om
    out = []
    for i in range(m):
        Q = torch.linalg.qr(torch.cat([Y[:, :i], Y[:, i + 1:]], dim=1)).Q
        u = Om[:, i] - Q @ (Q.T @ Om[:, i])
        u = u * math.sqrt(n - m + 1) / torch.linalg.vector_norm(u)
        out.append(torch.trace(Q.T @ A @ Q) + u @ A @ u)
    return torch.stack(out)


@pytest.mark.parametrize("n,m", [(30, 4), (60, 20), (25, 25)])
def test_samples_match_the_direct_leave_one_out_definition(n, m):
    """The downdated closed form equals m explicit QRs to 1e-10 of ||A||_F (rounding of
    m x m triangular solves on a well-conditioned random sketch)."""
    A = random_symmetric(n, seed=n + m)
    Om = sphere_vectors(n, m, seeded_generator(m), torch.device("cpu"))
    fast, direct = xtrace_samples(as_operator(A), Om), _leave_one_out(A, Om)
    assert float((fast - direct).abs().max()) <= 1e-10 * float(torch.linalg.norm(A))


@pytest.mark.parametrize("spectrum", [SPEC, SPEC - 0.5], ids=["psd", "indefinite"])
def test_xtrace_is_unbiased(spectrum):
    """Mean of 200 estimates (fixed seeds) within 4 standard errors of tr(A): a 99.99%
    z-interval, so this fails only for a real bias."""
    A = random_symmetric(200, seed=5, spectrum=spectrum)
    est = np.array([hb.trace(A, "xtrace", num_matvecs=30, seed=s).value for s in range(200)])
    assert abs(est.mean() - spectrum.sum()) <= 4 * est.std(ddof=1) / math.sqrt(len(est))


def test_xtrace_error_estimate_tracks_the_spread():
    """The paper's error estimate std(t_i) / sqrt(m) is a heuristic (the t_i are not
    independent): its median over seeds is within a factor 2 of the true spread."""
    A = random_symmetric(200, seed=6, spectrum=SPEC)
    res = [hb.trace(A, "xtrace", num_matvecs=60, seed=s) for s in range(100)]
    spread = np.std([r.value for r in res], ddof=1)
    assert 0.5 <= np.median([r.stderr for r in res]) / spread <= 2.0


def test_xtrace_beats_hutchpp_at_equal_budget():
    """Decaying spectrum, 60 products: XTrace's median error is below Hutch++'s (the
    paper's Fig. 1 ordering)."""
    A = random_symmetric(200, seed=7, spectrum=SPEC)
    err = {m: np.median([abs(hb.trace(A, m, num_matvecs=60, seed=s).value - SPEC.sum())
                         for s in range(50)]) for m in ("hutch++", "xtrace")}
    assert err["xtrace"] < err["hutch++"]


def test_net_at_init_indefinite_hessian():
    """The Hessian of a tanh MLP at init (float64, n = 83, indefinite): every estimate
    within 5 reported stderrs of the exact trace, and budget 2n is exact."""
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, 6, generator=gen, dtype=F64), torch.randint(0, 3, (40,), generator=gen)
    op = hb.hessian(mlp(6, [8], 3, activation="tanh", dtype=F64), nn.CrossEntropyLoss(), (x, y))
    H = op.dense()
    ev = torch.linalg.eigvalsh(H)
    assert ev[0] < 0 < ev[-1]
    exact = float(torch.trace(H))
    for seed in range(10):
        r = hb.trace(op, "xtrace", num_matvecs=40, seed=seed)
        assert r.matvecs == 40 and abs(r.value - exact) <= 5 * r.stderr
    full = hb.trace(op, "xtrace", num_matvecs=2 * op.num_params, seed=0)
    assert math.isclose(full.value, exact, rel_tol=1e-9, abs_tol=1e-9 * float(ev.abs().sum()))


@given(n=st.integers(10, 40), rank=st.integers(1, 8), seed=st.integers(0, 10_000))
def test_property_exact_below_the_sketch_rank(n, rank, seed):
    """rank(A) < m test vectors: every leave-one-out sketch spans range(A), so the
    estimate is tr(A) up to rounding (1e-8 of the nuclear norm) and the stderr ~ 0."""
    rank = min(rank, n - 1)
    gen = torch.Generator().manual_seed(seed)
    U = torch.linalg.qr(torch.randn(n, rank, generator=gen, dtype=F64)).Q
    lam = torch.randn(rank, generator=gen, dtype=F64) * 3
    A = U @ torch.diag(lam) @ U.T
    nuclear = float(lam.abs().sum())
    m = min(rank + 1, n)
    r = hb.trace(A, "xtrace", num_matvecs=2 * m, seed=seed)
    assert abs(r.value - float(lam.sum())) <= 1e-8 * nuclear
    assert r.stderr <= 1e-8 * nuclear


@given(n=st.integers(8, 30), c=st.floats(-5, 5).filter(lambda c: abs(c) > 1e-3),
       seed=st.integers(0, 10_000), method=st.sampled_from(["hutchinson", "hutch++", "xtrace"]))
def test_property_homogeneous_and_reproducible(n, c, seed, method):
    """Same seed, same result; t(cA) = c t(A) and stderr(cA) = |c| stderr(A) for every
    method (XTrace's sketch Q spans the same space for cA; it is not linear in A for a
    fixed seed, Hutchinson is)."""
    A = random_symmetric(n, seed)
    a = hb.trace(A, method, num_matvecs=12, seed=seed)
    assert a.value == hb.trace(A, method, num_matvecs=12, seed=seed).value
    b = hb.trace(c * A, method, num_matvecs=12, seed=seed)
    scale = float(torch.linalg.norm(A)) * abs(c)
    assert abs(b.value - c * a.value) <= 1e-9 * scale
    assert abs(b.stderr - abs(c) * a.stderr) <= 1e-9 * scale


@given(n=st.integers(8, 30), a=st.floats(-3, 3), b=st.floats(-3, 3), seed=st.integers(0, 10_000))
def test_property_hutchinson_is_linear_in_the_matrix(n, a, b, seed):
    A, B = random_symmetric(n, seed), random_symmetric(n, seed + 1)
    t = lambda M: hb.trace(M, "hutchinson", num_matvecs=10, seed=seed).value  # noqa: E731
    scale = (abs(a) + abs(b) + 1) * float(torch.linalg.norm(A) + torch.linalg.norm(B))
    assert abs(t(a * A + b * B) - (a * t(A) + b * t(B))) <= 1e-10 * scale


def test_xtrace_arguments():
    A = random_symmetric(20, 0)
    with pytest.raises(ValueError, match="num_matvecs"):
        hb.trace(A, "xtrace", num_matvecs=3)
    with pytest.raises(ValueError, match="xtrace spends its whole budget"):
        hb.trace(A, "xtrace", target_rel_error=0.1)
    assert hb.trace(A, "xtrace", num_matvecs=11).matvecs == 10   # m = 5 test vectors
    assert hb.trace(A, "xtrace", num_matvecs=1000).matvecs == 40  # at most n test vectors


def test_default_method_is_xtrace_or_hutchpp_when_adaptive():
    A = random_symmetric(30, 1)
    assert hb.trace(A, num_matvecs=20).method == "xtrace"
    adaptive = hb.trace(A, num_matvecs=200, target_rel_error=0.5, on_unconverged="ignore")
    assert adaptive.method == "hutch++"
