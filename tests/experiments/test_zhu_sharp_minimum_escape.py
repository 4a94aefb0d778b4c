"""zhu_sharp_minimum_escape: the low-rank Table 1 noises against the dense
``hessbench.noise.table1_covariance``, the Fig. 5 premises against a dense float64 Hessian,
the expected sharpness against its closed form on a least-squares model, the corrupted
labels, the arms' aggregates, validation, the claim file and the figure (tiny sizes; the
claim itself runs under ``pytest claims``)."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from matplotlib.figure import Figure
from torch import nn

import hessbench as hb
from hessbench.claims.spec import load_claim
from hessbench.experiments import zhu_sharp_minimum_escape as zs
from hessbench.experiments.zhu_escape_figure import plot_sharp_minimum_escape
from hessbench.experiments.zhu_lowrank_noise import (FACTOR_KINDS, NoiseFactor,
                                                     centred_gradients, noise_factor, sgd_trace)
from hessbench.noise import (TABLE1_KINDS, escape_indicator, isotropic_indicator,
                             sgd_covariance, table1_covariance)
from tests.experiment_helpers import assert_rejects, record, registered

CPU = torch.device("cpu")
CLAIM = Path(__file__).resolve().parents[2] / "claims" / "zhu-sharp-minimum-escape.toml"
TINY = {**zs.DEFAULTS, "n_train": 40, "n_random": 8, "channels": [2, 2], "fc": 4,
        "gd_steps": 20, "steps": 10, "k": 3, "trace_matvecs": 20, "sharpness_samples": 5,
        "arms": ["gd", "sgd", "gld_const", "gld_dynamic", "gld_1st_eigvec"]}


def _random_problem(n: int, d: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample gradients (n, d) and a PSD 'Hessian' (d, d) with distinct eigenvalues."""
    gen = torch.Generator().manual_seed(seed)
    grads = torch.randn(n, d, generator=gen, dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))
    return grads, (q * torch.linspace(0.1, 3.0, d, dtype=torch.float64)) @ q.T


@pytest.mark.parametrize("n, d", [(12, 8), (5, 8)])
@pytest.mark.parametrize("kind", ["gld_dynamic", "gld_diag", "gld_leading", "gld_hessian",
                                  "gld_1st_eigvec"])
def test_factor_covariance_equals_the_dense_table1_noise(kind, n, d):
    grads, hess = _random_problem(n, d)
    vals, vecs = torch.linalg.eigh(hess)
    factor = noise_factor(kind, centred_gradients(grads), 4, k=3, hess_values=vals.flip(0),
                          hess_vectors=vecs.flip(1))
    dense = table1_covariance(kind, trace=None, sgd_cov=sgd_covariance(grads, 4), hessian=hess,
                              k=3)
    torch.testing.assert_close(factor.covariance(), dense, rtol=1e-10, atol=1e-12)
    assert factor.trace() == pytest.approx(float(dense.trace()), rel=1e-12)


def test_constant_noise_and_sgd_trace():
    grads, _ = _random_problem(10, 6)
    c = centred_gradients(grads)
    assert sgd_trace(c, 5) == pytest.approx(float(sgd_covariance(grads, 5).trace()), rel=1e-12)
    const = noise_factor("gld_const", c, 5, const_std=0.3)
    torch.testing.assert_close(const.covariance(), 0.09 * torch.eye(6, dtype=torch.float64))


def test_factor_draws_have_the_covariance():
    """Monte Carlo: the mean of eps eps^T over 20000 draws is within 6 standard errors."""
    grads, hess = _random_problem(12, 5, seed=3)
    vals, vecs = torch.linalg.eigh(hess)
    gen = torch.Generator().manual_seed(0)
    for kind in FACTOR_KINDS:
        f = noise_factor(kind, centred_gradients(grads), 1, k=2, const_std=0.5,
                         hess_values=vals.flip(0), hess_vectors=vecs.flip(1))
        draws = torch.stack([f.sample(gen) for _ in range(20000)])
        outer = draws[:, :, None] * draws[:, None, :]
        se = outer.std(dim=0) / math.sqrt(len(draws))
        err = (outer.mean(dim=0) - f.covariance()).abs()
        assert bool((err <= 6 * se + 1e-12).all()), kind


@pytest.mark.parametrize("call, match", [
    (lambda c, v, u: NoiseFactor(), "exactly one"),
    (lambda c, v, u: NoiseFactor(scale=v, basis=u), "exactly one"),
    (lambda c, v, u: noise_factor("sgd", c, 1), "unknown noise kind"),
    (lambda c, v, u: noise_factor("gld_const", c, 1), "const_std"),
    (lambda c, v, u: noise_factor("gld_hessian", c, 1, k=2), "hess_values"),
    (lambda c, v, u: noise_factor("gld_hessian", c, 1, k=2, hess_values=-v, hess_vectors=u),
     "negative"),
    (lambda c, v, u: noise_factor("gld_leading", c, 1, k=99), "k must be"),
    (lambda c, v, u: noise_factor("gld_dynamic", torch.zeros_like(c), 1), "Tr Sigma_sgd is 0"),
    (lambda c, v, u: centred_gradients(c[:1]), "N >= 2"),
])
def test_noise_validation(call, match):
    grads, hess = _random_problem(6, 4)
    vals, vecs = torch.linalg.eigh(hess)
    with pytest.raises(ValueError, match=match):
        call(centred_gradients(grads), vals.flip(0), vecs.flip(1))


def test_expected_sharpness_closed_form_on_least_squares():
    """At the least-squares solution L(w + nu) - L(w) = nu^T A nu, A = mean x~ x~^T (x~ = (x, 1)),
    so the estimate has mean delta^2 Tr A and standard error delta^2 sqrt(2/M) ||A||_F."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(50, 3, generator=gen, dtype=torch.float64)
    y = torch.randn(50, 1, generator=gen, dtype=torch.float64)
    xt = torch.cat([x, torch.ones(50, 1, dtype=torch.float64)], dim=1)
    sol = torch.linalg.lstsq(xt, y).solution
    model = nn.Linear(3, 1).double()
    with torch.no_grad():
        model.weight.copy_(sol[:3].T)
        model.bias.copy_(sol[3])
    a = xt.T @ xt / 50
    delta, m = 0.1, 4000
    got = zs.expected_sharpness(model, x, y, delta, m, seed=0, loss_fn=nn.functional.mse_loss)
    se = delta ** 2 * math.sqrt(2 / m) * float(a.norm())
    assert abs(got - delta ** 2 * float(a.trace())) < 5 * se
    with pytest.raises(ValueError, match="delta > 0"):
        zs.expected_sharpness(model, x, y, 0.0, m, seed=0)


def test_corrupted_digits_changes_exactly_the_first_labels():
    x, y, xt, yt = zs.corrupted_digits(100, 17, seed=4, device=CPU)
    _, clean, _, _ = zs.corrupted_digits(100, 0, seed=4, device=CPU)
    assert x.shape == (100, 64) and len(xt) == len(yt) == 1697
    assert bool((y[:17] != clean[:17]).all()) and torch.equal(y[17:], clean[17:])
    assert int(y.min()) >= 0 and int(y.max()) < 10


def test_fig5_premises_match_the_dense_hessian():
    model = zs.convnet([1, 1], 2, seed=0).double()
    x, y, _, _ = zs.corrupted_digits(30, 5, seed=0, device=CPU)
    x = x.double()
    d = sum(p.numel() for p in model.parameters())
    p = {**zs.DEFAULTS, "batch_size": 3, "paper_rank": 5, "paper_num_params": d,
         "eig_tol": 1e-10, "trace_matvecs": 3 * d + 3}  # Hutch++ exact once its sketch spans R^d
    got = zs.fig5_premises(model, x, y, p, seed=0)
    h = hb.hessian(model, zs.LOSS, (x, y)).dense()
    ev, u = torch.linalg.eigh(h)
    sigma = sgd_covariance(hb.problem.Problem(model, zs.LOSS, (x, y)).per_sample_gradients(x, y), 3)
    assert got["rank"] == 5 and got["num_params"] == d
    assert got["eig_ratio_rank"] == pytest.approx(float(ev[-5] / ev[-1]), rel=1e-6)
    assert got["tr_h"] == pytest.approx(float(h.trace()), rel=1e-8)
    assert got["tr_h_sigma_sgd"] == pytest.approx(float(escape_indicator(h, sigma)), rel=1e-8)
    assert got["tr_h_sigma_iso"] == pytest.approx(float(isotropic_indicator(h, sigma)), rel=1e-8)
    u1 = u[:, -1]
    a = float(u1 @ sigma @ u1) * float(h.trace()) / (float(ev[-1]) * float(sigma.trace()))
    assert got["alignment"] == pytest.approx(a, rel=1e-6)


@pytest.fixture(scope="module")
def tiny_run():
    return zs.zhu_sharp_minimum_escape(TINY, 99, CPU)


def test_metrics_aggregates_and_determinism(tiny_run):
    m = tiny_run.metrics
    assert set(m) <= set(zs.METRICS)
    escaping = [k for k in TINY["arms"] if k in zs.ESCAPING]
    staying = [k for k in TINY["arms"] if k in zs.STAYING]
    assert m["min_train_accuracy_drop_escaping"] == min(m[f"train_accuracy_drop_{k}"]
                                                        for k in escaping)
    assert m["max_test_gain_staying"] == max(m[f"test_accuracy_gain_{k}"] for k in staying)
    for k in TINY["arms"]:
        curve = tiny_run.figure_data["curves"][k]
        assert curve["step"] == [0, 10]
        assert m[f"test_accuracy_gain_{k}"] == pytest.approx(curve["test"][-1] - curve["test"][0])
    assert "train_accuracy_drop_gld_hessian" not in m  # not an arm of this run
    zs._sharp_minimum.cache_clear()
    assert zs.zhu_sharp_minimum_escape(TINY, 99, CPU).metrics == m


def test_isotropic_structure_changes_only_the_aligned_arms(tiny_run):
    iso = zs.zhu_sharp_minimum_escape({**TINY, "noise_structure": "isotropic"}, 99, CPU).metrics
    for key in zs.PREMISES + [f"{m}_{k}" for k in ("gd", "gld_const") for m in zs.PER_ARM]:
        assert iso[key] == tiny_run.metrics[key], key


@pytest.mark.parametrize("params, match", [
    ({"arms": ["gd", "sgd", "gld_1st_eigvec"]}, "must include"),
    ({"arms": ["gd", "sgd", "gld_const", "gld_dynamic"]}, "Hessian-aligned"),
    ({"arms": ["gd", "sgd", "gld_const", "gld_1st_eigvec", "adam"]}, "distinct kinds"),
    ({"noise_structure": "white"}, "noise_structure"), ({"n_random": 40}, "n_random"),
    ({"n_train": 1790}, "n_train"), ({"batch_size": 41}, "batch_size"),
    ({"refresh_every": 0}, "refresh_every"), ({"typo": 1}, "unknown"),
])
def test_bad_params_raise(params, match):
    assert_rejects(zs.zhu_sharp_minimum_escape, {**TINY, **params}, match)


def test_claim_file_and_figure(tiny_run):
    claim = load_claim(CLAIM)
    registered(claim.experiment, zs.zhu_sharp_minimum_escape, zs.METRICS)
    assert [c.name for c in claim.controls] == ["isotropic-noise"]
    paper = claim.setup("paper").params
    assert (paper["n_train"], paper["n_random"], paper["gd_steps"], paper["lr"],
            paper["batch_size"], paper["const_std"], paper["k"]) == (1200, 200, 3000, 0.07, 20,
                                                                     0.001, 20)
    assert sorted(paper["arms"]) == sorted(TABLE1_KINDS)
    smoke = claim.setup("smoke").params
    assert {"gd", "sgd", "gld_const", "gld_1st_eigvec"} <= set(smoke["arms"])
    assert smoke["n_random"] * 6 == smoke["n_train"]  # the paper's 200 of 1200
    fig = plot_sharp_minimum_escape([record(tiny_run, TINY, seed=99),
                                     record(tiny_run, TINY, seed=98)])
    assert isinstance(fig, Figure) and all(ax.get_xlabel() and ax.get_ylabel() for ax in fig.axes)
