"""hessbench.noise against dense float64 references and closed forms."""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hessbench import noise
from hessbench.problem import Problem
from hessbench.utils import seeded_generator

F64 = torch.float64
HYP = settings(max_examples=25, deadline=None, derandomize=True)


def random_spd(d: int, seed: int, low: float = 0.5, high: float = 5.0,
               batch: tuple = ()) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    out = np.empty(batch + (d, d))
    for idx in np.ndindex(*batch):
        q, _ = np.linalg.qr(rng.standard_normal((d, d)))
        out[idx] = (q * rng.uniform(low, high, d)) @ q.T
    return torch.tensor(out, dtype=F64)


def random_psd(d: int, seed: int, rank: int | None = None) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((d, rank or d))
    return torch.tensor(a @ a.T / (rank or d), dtype=F64)


# --- SGD covariance ---------------------------------------------------------------------

@HYP
@given(n=st.integers(2, 30), d=st.integers(1, 6), b=st.integers(1, 30), seed=st.integers(0, 10**6))
def test_sgd_covariance_matches_numpy_cov(n, d, b, seed):
    b = min(b, n)
    g = np.random.default_rng(seed).standard_normal((n, d))
    ref = np.atleast_2d(np.cov(g, rowvar=False, bias=True)) / b
    got = noise.sgd_covariance(torch.tensor(g), b).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-13)
    # the uncentred form (1/b)[(1/N) sum g g^T - gbar gbar^T] of Zhu et al.
    gbar = g.mean(0)
    uncentred = (g.T @ g / n - np.outer(gbar, gbar)) / b
    np.testing.assert_allclose(got, uncentred, rtol=1e-10, atol=1e-12)
    without = noise.sgd_covariance(torch.tensor(g), b, replacement=False).numpy()
    np.testing.assert_allclose(without, ref * (n - b) / (n - 1), rtol=1e-12, atol=1e-13)


def test_sgd_covariance_batched_and_matches_minibatch_mean_variance():
    g = torch.randn(3, 5, 20, 4, generator=seeded_generator(0), dtype=F64)
    cov = noise.sgd_covariance(g, 2)
    assert cov.shape == (3, 5, 4, 4)
    np.testing.assert_allclose(cov[1, 2].numpy(), noise.sgd_covariance(g[1, 2], 2).numpy())
    # exact enumeration: the covariance of the mean of a with-replacement batch of 2
    gi = g[0, 0].numpy()
    pairs = (gi[:, None, :] + gi[None, :, :]).reshape(-1, 4) / 2
    ref = np.cov(pairs, rowvar=False, bias=True)
    np.testing.assert_allclose(cov[0, 0].numpy(), ref, atol=1e-12)


def test_sgd_covariance_bad_input():
    g = torch.randn(10, 3, dtype=F64)
    with pytest.raises(ValueError, match="batch_size"):
        noise.sgd_covariance(g, 11)
    with pytest.raises(ValueError, match="batch_size"):
        noise.sgd_covariance(g, 0)
    with pytest.raises(TypeError, match="per_sample_grads"):
        noise.sgd_covariance(torch.ones(10, dtype=torch.int64).reshape(5, 2))
    with pytest.raises(ValueError, match="N >= 2"):
        noise.sgd_covariance(g[:1], 1, replacement=False)


def test_sgd_covariance_matches_core_gradient_covariance_operator():
    import hessbench as hb

    torch.manual_seed(0)  # parameter init only; not part of any result
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 3))
    model = model.double()
    x = torch.randn(25, 3, generator=seeded_generator(1), dtype=F64)
    y = torch.randint(0, 3, (25,), generator=seeded_generator(2))
    loss_fn = torch.nn.functional.cross_entropy
    mine = noise.sgd_covariance(Problem(model, loss_fn, (x, y)).per_sample_gradients(x, y), 5)
    core = hb.gradient_covariance(model, loss_fn, (x, y), batch_size=5).dense()
    torch.testing.assert_close(mine, core, rtol=1e-10, atol=1e-13)


# --- Table 1 covariances ------------------------------------------------------------------

@HYP
@given(d=st.integers(1, 6), k=st.integers(1, 6), seed=st.integers(0, 10**6))
def test_top_k_part_matches_numpy(d, k, seed):
    k = min(k, d)
    m = random_psd(d, seed) - 0.3 * torch.eye(d, dtype=F64)
    vals, vecs = np.linalg.eigh(m.numpy())
    ref = (vecs[:, -k:] * vals[-k:]) @ vecs[:, -k:].T
    np.testing.assert_allclose(noise.top_k_part(m, k).numpy(), ref, atol=1e-12)
    if k == d:
        np.testing.assert_allclose(noise.top_k_part(m, k).numpy(), m.numpy(), atol=1e-12)


@pytest.mark.parametrize("kind,trace", [(k, t) for k in noise.TABLE1_KINDS if k != "gd"
                                         for t in (0.01, None) if (k, t) != ("gld_const", None)])
def test_every_kind_has_the_stated_trace(kind, trace):
    sgd = random_psd(5, 1, rank=3)
    hess = random_spd(5, 2)
    cov = noise.table1_covariance(kind, trace=trace, sgd_cov=sgd, hessian=hess, k=2)
    want = float(torch.trace(sgd)) if trace is None else trace
    assert float(torch.trace(cov)) == pytest.approx(want, rel=1e-12)
    torch.testing.assert_close(cov, cov.T)
    assert float(torch.linalg.eigvalsh(cov).min()) > -1e-14


def test_kind_shapes():
    sgd = random_psd(4, 3)
    hess = random_spd(4, 4)
    t = 0.01
    diag = noise.table1_covariance("gld_diag", trace=t, sgd_cov=sgd)
    ref = np.diag(np.diag(sgd.numpy())) * t / np.trace(sgd.numpy())
    np.testing.assert_allclose(diag.numpy(), ref)
    full = noise.table1_covariance("gld_leading", trace=t, sgd_cov=sgd, k=4)
    np.testing.assert_allclose(full.numpy(), sgd.numpy() * t / np.trace(sgd.numpy()), atol=1e-15)
    np.testing.assert_allclose(noise.table1_covariance("sgd", trace=None, sgd_cov=sgd).numpy(),
                               sgd.numpy(), atol=1e-15)
    iso = noise.table1_covariance("gld_dynamic", trace=None, sgd_cov=sgd)
    np.testing.assert_allclose(iso.numpy(), np.eye(4) * np.trace(sgd.numpy()) / 4, atol=1e-15)
    const = noise.table1_covariance("gld_const", trace=t, dim=4)
    np.testing.assert_allclose(const.numpy(), np.eye(4) * t / 4)
    vals, vecs = np.linalg.eigh(hess.numpy())
    eig1 = noise.table1_covariance("gld_1st_eigvec", trace=t, hessian=hess)
    np.testing.assert_allclose(eig1.numpy(), t * np.outer(vecs[:, -1], vecs[:, -1]), atol=1e-15)
    hk = noise.table1_covariance("gld_hessian", trace=t, hessian=hess, k=2)
    ref = (vecs[:, -2:] * vals[-2:]) @ vecs[:, -2:].T
    np.testing.assert_allclose(hk.numpy(), ref * t / np.trace(ref), atol=1e-15)
    assert float(noise.table1_covariance("gd", trace=t, sgd_cov=sgd).abs().max()) == 0.0


def test_table1_covariance_is_batched():
    sgd = torch.stack([random_psd(3, s) for s in range(4)])
    hess = random_spd(3, 9, batch=(4,))
    for kind in ("gld_diag", "gld_leading", "gld_hessian", "gld_1st_eigvec"):
        cov = noise.table1_covariance(kind, trace=0.5, sgd_cov=sgd, hessian=hess, k=2)
        assert cov.shape == (4, 3, 3)
        one = noise.table1_covariance(kind, trace=0.5, sgd_cov=sgd[2], hessian=hess[2], k=2)
        torch.testing.assert_close(cov[2], one)


def test_table1_covariance_errors():
    sgd, hess = random_psd(3, 0), random_spd(3, 1)
    with pytest.raises(ValueError, match="unknown noise kind"):
        noise.table1_covariance("langevin", trace=1.0, sgd_cov=sgd)
    with pytest.raises(ValueError, match="needs sgd_cov"):
        noise.table1_covariance("gld_diag", trace=1.0, hessian=hess)
    with pytest.raises(ValueError, match="needs hessian"):
        noise.table1_covariance("gld_hessian", trace=1.0, sgd_cov=sgd, k=1)
    with pytest.raises(ValueError, match="pass k"):
        noise.table1_covariance("gld_leading", trace=1.0, sgd_cov=sgd)
    with pytest.raises(ValueError, match="gld_dynamic"):
        noise.table1_covariance("gld_const", trace=None, sgd_cov=sgd)
    with pytest.raises(ValueError, match="dim"):
        noise.table1_covariance("gld_const", trace=1.0)
    with pytest.raises(ValueError, match="negative"):
        noise.table1_covariance("gld_hessian", trace=1.0, hessian=-hess, k=1)
    with pytest.raises(ValueError, match="trace <= 0"):
        noise.table1_covariance("gld_diag", trace=1.0, sgd_cov=torch.zeros(3, 3, dtype=F64))
    with pytest.raises(ValueError, match="k must be"):
        noise.table1_covariance("gld_leading", trace=1.0, sgd_cov=sgd, k=4)


# --- sampling --------------------------------------------------------------------------

def test_sample_gaussian_covariance_and_squared_norm_by_monte_carlo():
    d, n = 4, 200_000
    cov = noise.table1_covariance("gld_leading", trace=0.01, sgd_cov=random_psd(d, 5, rank=2), k=2)
    eps = noise.sample_gaussian(cov, seeded_generator(0), (n,))
    assert eps.shape == (n, d)
    sq = (eps ** 2).sum(1)
    # E||eps||^2 = Tr cov; 4.5 standard errors (the estimate is a mean of n iid values)
    assert abs(float(sq.mean()) - 0.01) < 4.5 * float(sq.std()) / math.sqrt(n)
    emp = (eps.T @ eps / n).numpy()
    # entrywise standard error of E[e_i e_j]: sqrt((C_ii C_jj + C_ij^2) / n)
    c = cov.numpy()
    se = np.sqrt((np.outer(np.diag(c), np.diag(c)) + c ** 2) / n)
    assert np.all(np.abs(emp - c) <= 4.5 * se + 1e-15)


def test_sample_gaussian_is_seeded_and_rejects_indefinite():
    cov = random_spd(3, 0)
    a = noise.sample_gaussian(cov, seeded_generator(7), (5,))
    b = noise.sample_gaussian(cov, seeded_generator(7), (5,))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    with pytest.raises(ValueError, match="positive semi-definite"):
        noise.sample_gaussian(cov - 10 * torch.eye(3, dtype=F64), seeded_generator(0))


def test_gld_step_is_gd_plus_noise():
    theta = torch.randn(6, 3, generator=seeded_generator(0), dtype=F64)
    g = torch.randn(6, 3, generator=seeded_generator(1), dtype=F64)
    gd = noise.gld_step(theta, g, None, 0.1, seeded_generator(0))
    torch.testing.assert_close(gd, theta - 0.1 * g)
    cov = random_spd(3, 2)
    step = noise.gld_step(theta, g, cov, 0.1, seeded_generator(3))
    eps = noise.sample_gaussian(cov, seeded_generator(3), (6,))
    torch.testing.assert_close(step, theta - 0.1 * g + eps)


# --- indicators --------------------------------------------------------------------------

@HYP
@given(d=st.integers(1, 7), seed=st.integers(0, 10**6))
def test_indicators_match_dense_numpy(d, seed):
    h, s = random_spd(d, seed), random_psd(d, seed + 1)
    hn, sn = h.numpy(), s.numpy()
    assert float(noise.escape_indicator(h, s)) == pytest.approx(np.trace(hn @ sn), rel=1e-12)
    assert float(noise.isotropic_indicator(h, s)) == pytest.approx(
        np.trace(hn) * np.trace(sn) / d, rel=1e-12)
    iso = torch.eye(d, dtype=F64) * torch.trace(s) / d
    assert float(noise.escape_indicator(h, iso)) == pytest.approx(
        float(noise.isotropic_indicator(h, s)), rel=1e-12)
    a = float(noise.alignment_coefficient(h, s))
    lam1 = np.linalg.eigvalsh(hn)[-1]
    assert a == pytest.approx(np.trace(hn @ sn) / (lam1 * np.trace(sn)), rel=1e-12)
    assert 0.0 < a <= 1.0 + 1e-12
    top = noise.table1_covariance("gld_1st_eigvec", trace=1.0, hessian=h)
    assert float(noise.alignment_coefficient(h, top)) == pytest.approx(1.0, rel=1e-10)


# --- Eq. 13 and its discretisation -------------------------------------------------------

def ou_reference(h: np.ndarray, s: np.ndarray, t: float) -> float:
    """1/2 Tr(H C(t)), C(t) = int_0^t e^{-Hu} S e^{-Hu} du by Van Loan's block exponential."""
    d = len(h)
    block = np.block([[-h, s], [np.zeros((d, d)), h]])
    e = scipy.linalg.expm(block * t)
    f22 = e[d:, d:]             # e^{Ht}
    g12 = e[:d, d:]             # int_0^t e^{-H(t-u)} S e^{Hu} du
    cov = g12 @ np.linalg.inv(f22)  # = int_0^t e^{-Hv} S e^{-Hv} dv
    return 0.5 * float(np.trace(h @ cov))


@HYP
@given(d=st.integers(1, 5), t=st.floats(0.01, 3.0), seed=st.integers(0, 10**6))
def test_eq13_matches_van_loan_integral(d, t, seed):
    h, s = random_spd(d, seed, low=-0.5, high=3.0), random_psd(d, seed + 1)
    got = float(noise.ou_expected_loss_increase(h, s, t))
    assert got == pytest.approx(ou_reference(h.numpy(), s.numpy(), t), rel=1e-8, abs=1e-12)


def test_eq13_small_t_is_half_t_tr_h_sigma():
    h, s = random_spd(4, 0), random_psd(4, 1)
    t = 1e-5
    lead = 0.5 * t * float(noise.escape_indicator(h, s))
    assert float(noise.ou_expected_loss_increase(h, s, t)) == pytest.approx(lead, rel=1e-4)


def covariance_recursion(h: np.ndarray, step_cov: np.ndarray, lr: float, steps: int) -> float:
    m = np.eye(len(h)) - lr * h
    c = np.zeros_like(h)
    for _ in range(steps):
        c = m @ c @ m.T + step_cov
    return 0.5 * float(np.trace(h @ c))


@HYP
@given(d=st.integers(1, 5), lr=st.floats(1e-3, 0.7), steps=st.integers(0, 60),
       seed=st.integers(0, 10**6))
def test_discrete_expectation_matches_covariance_recursion(d, lr, steps, seed):
    h, s = random_spd(d, seed, low=0.0, high=2.9), random_psd(d, seed + 1)
    got = float(noise.discrete_expected_loss_increase(h, s, lr, steps))
    ref = covariance_recursion(h.numpy(), s.numpy(), lr, steps)
    assert got == pytest.approx(ref, rel=1e-9, abs=1e-14)


def test_discrete_expectation_edge_eigenvalues():
    s = random_psd(3, 0)
    # lr * lambda = 0, 1 and 2 (|1 - lr lambda| = 1: the geometric ratio is exactly 1)
    h = torch.diag(torch.tensor([0.0, 1.0, 2.0], dtype=F64))
    got = float(noise.discrete_expected_loss_increase(h, s, 1.0, 7))
    assert got == pytest.approx(covariance_recursion(h.numpy(), s.numpy(), 1.0, 7), rel=1e-12)


def test_discretisation_converges_to_eq13_at_first_order():
    h, s = random_spd(4, 3), random_psd(4, 4)
    t = 1.0
    exact = float(noise.ou_expected_loss_increase(h, s, t))
    gaps = []
    for k in (100, 200, 400):
        lr = t / k
        gaps.append(float(noise.discrete_expected_loss_increase(h, lr * s, lr, k)) / exact - 1)
    assert abs(gaps[0]) < 0.05
    # halving the step halves the relative gap (first order), within 5%
    assert gaps[0] / gaps[1] == pytest.approx(2.0, rel=0.05)
    assert gaps[1] / gaps[2] == pytest.approx(2.0, rel=0.05)


# --- simulate_gld -------------------------------------------------------------------------

def quad_sample_loss(theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """l(theta; x) = 1/2 (theta - x)^T A (theta - x), A = diag(1, 4)."""
    a = torch.tensor([1.0, 4.0], dtype=theta.dtype)
    r = theta - x
    return 0.5 * (a * r * r).sum()


QUAD = noise.FiniteSum.from_loss(quad_sample_loss)


def test_finite_sum_from_loss_matches_closed_form():
    x = torch.randn(3, 10, 2, generator=seeded_generator(0), dtype=F64)
    theta = torch.randn(3, 2, generator=seeded_generator(1), dtype=F64)
    a = torch.tensor([1.0, 4.0], dtype=F64)
    torch.testing.assert_close(QUAD.per_sample_grads(theta, x), a * (theta[:, None, :] - x))
    torch.testing.assert_close(QUAD.hessian(theta, x), torch.diag(a).expand(3, 2, 2))


def test_simulate_gd_matches_closed_form():
    x = torch.randn(3, 10, 2, generator=seeded_generator(0), dtype=F64)
    theta0 = torch.zeros(3, 2, dtype=F64)
    res = noise.simulate_gld("gd", QUAD, x, theta0, lr=0.1, steps=5, trace=0.01, seed=0,
                             record_every=1)
    a = torch.tensor([1.0, 4.0], dtype=F64)
    xbar = x.mean(1)
    # theta_k = xbar + (1 - lr a)^k (theta_0 - xbar)
    torch.testing.assert_close(res.final, xbar + (1 - 0.1 * a) ** 5 * (theta0 - xbar))
    assert res.path.shape == (6, 3, 2) and res.path_steps == [0, 1, 2, 3, 4, 5]


@pytest.mark.parametrize("kind", ["gld_const", "gld_diag", "gld_leading", "gld_hessian",
                                  "gld_1st_eigvec"])
def test_simulate_one_step_noise_has_stated_trace(kind):
    chains = 20_000
    x = torch.randn(1, 10, 2, generator=seeded_generator(0), dtype=F64).expand(chains, 10, 2)
    theta0 = torch.zeros(chains, 2, dtype=F64)
    res = noise.simulate_gld(kind, QUAD, x, theta0, lr=0.1, steps=1, trace=0.01, seed=1, k=1)
    gd = noise.simulate_gld("gd", QUAD, x, theta0, lr=0.1, steps=1, trace=0.01, seed=1)
    sq = ((res.final - gd.final) ** 2).sum(1)
    assert abs(float(sq.mean()) - 0.01) < 4.5 * float(sq.std()) / math.sqrt(chains)
    if kind in ("gld_hessian", "gld_1st_eigvec"):  # H = diag(1, 4): all noise on the 2nd axis
        assert float((res.final - gd.final)[:, 0].abs().max()) < 1e-12


def test_simulate_gld_is_seeded_and_validates():
    x = torch.randn(4, 10, 2, generator=seeded_generator(0), dtype=F64)
    theta0 = torch.zeros(4, 2, dtype=F64)
    a = noise.simulate_gld("gld_diag", QUAD, x, theta0, lr=0.1, steps=3, trace=0.01, seed=5)
    b = noise.simulate_gld("gld_diag", QUAD, x, theta0, lr=0.1, steps=3, trace=0.01, seed=5)
    torch.testing.assert_close(a.final, b.final, rtol=0, atol=0)
    with pytest.raises(ValueError, match="same C"):
        noise.simulate_gld("gd", QUAD, x[:3], theta0, lr=0.1, steps=3, trace=0.01, seed=0)
    with pytest.raises(TypeError, match="FiniteSum"):
        noise.simulate_gld("gd", quad_sample_loss, x, theta0, lr=0.1, steps=3, trace=0.01, seed=0)
    with pytest.raises(ValueError, match="unknown noise kind"):
        noise.simulate_gld("adam", QUAD, x, theta0, lr=0.1, steps=3, trace=0.01, seed=0)
