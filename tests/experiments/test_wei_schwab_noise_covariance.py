"""wei_schwab_noise_covariance: the statistics in closed form, the noise covariance against
an enumeration of every minibatch, Eq. 4 and E_y F = G against dense autograd references,
the label sampler, validation, the claim file and the figure (tiny sizes)."""
from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from torch import nn

import hessbench as hb
from hessbench.claims.spec import load_claim
from hessbench.experiments import wei_schwab_noise_covariance as wn
from hessbench.models import mlp
from hessbench.problem import Problem
from hessbench.utils import seeded_generator
from tests.experiment_helpers import assert_rejects, record, registered
from tests.reference import flat_loss, flat_params, reference_hessian

CLAIM = Path(__file__).resolve().parents[2] / "claims" / "wei-schwab-noise-covariance.toml"
F64 = torch.float64
CE = nn.functional.cross_entropy
TINY = {"num_samples": 40, "hidden": [3], "batch_size": 8, "checkpoint_loss": 2.2,
        "max_epochs": 50, "top_k": 3}


def rotation(angle: float) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, -s], [s, c]], dtype=F64)


@pytest.fixture(scope="module")
def net():
    gen = seeded_generator(0)
    x = torch.randn(6, 3, generator=gen, dtype=F64)
    y = torch.randint(0, 3, (6,), generator=gen)
    return mlp(3, [2], 3, activation="tanh", seed=1, dtype=F64), x, y


# --- the statistics in closed form ------------------------------------------------------

def test_matrix_alignment_closed_forms():
    a = torch.tensor([[2.0, 1.0], [1.0, 3.0]], dtype=F64)
    assert wn.matrix_alignment(a, 4.0 * a) == pytest.approx(1.0, abs=1e-15)
    assert wn.matrix_alignment(a, -a) == pytest.approx(-1.0, abs=1e-15)
    assert wn.matrix_alignment(torch.diag(torch.tensor([1.0, 0.0], dtype=F64)),
                               torch.diag(torch.tensor([0.0, 1.0], dtype=F64))) == 0.0
    lam = torch.tensor([3.0, 1.0, 0.5, 0.0], dtype=F64)
    # cos(I, diag lam) = sum lam / (sqrt(D) ||lam||): the isotropic control's alignment
    expected = float(lam.sum() / (2.0 * lam.norm()))
    assert wn.matrix_alignment(torch.eye(4, dtype=F64), torch.diag(lam)) == pytest.approx(
        expected, rel=1e-14)
    with pytest.raises(ValueError, match="zero matrix"):
        wn.matrix_alignment(torch.zeros(2, 2, dtype=F64), a)


def test_noise_scale_is_one_for_eq5_and_validates():
    h = torch.diag(torch.tensor([4.0, 1.0, 0.0], dtype=F64))
    s, m = 8, 100
    assert wn.noise_scale((1 / s) * (1 - s / m) * h, h, s, m) == pytest.approx(1.0, rel=1e-14)
    assert wn.noise_scale(0.5 * (1 / s) * (1 - s / m) * h, h, s, m) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="batch_size"):
        wn.noise_scale(h, h, m, m)
    with pytest.raises(ValueError, match="Tr H"):
        wn.noise_scale(h, -h, s, m)


def test_subspace_overlap_closed_forms():
    a = torch.diag(torch.tensor([3.0, 1.0], dtype=F64))
    assert wn.subspace_overlap(a, 2.0 * a, 1) == pytest.approx(1.0)
    assert wn.subspace_overlap(a, a.flip(0).flip(1), 1) == pytest.approx(0.0, abs=1e-15)
    # top eigenvector rotated by theta: overlap cos^2 theta
    r = rotation(0.3)
    assert wn.subspace_overlap(a, r @ a @ r.T, 1) == pytest.approx(math.cos(0.3) ** 2,
                                                                   rel=1e-12)
    assert wn.subspace_overlap(a, r @ a @ r.T, 2) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="top_k"):
        wn.subspace_overlap(a, a, 3)


def test_relative_gap():
    b = torch.eye(2, dtype=F64)
    assert wn.relative_gap(1.5 * b, b) == pytest.approx(0.5)


def test_model_labels_follow_the_softmax_and_are_seeded():
    logits = torch.tensor([[0.0, math.log(3.0)]], dtype=F64).expand(20000, 2)
    first = wn.model_labels(logits, seeded_generator(5))
    assert torch.equal(first, wn.model_labels(logits, seeded_generator(5)))
    # P(label 1) = 3/4; 4 standard errors
    se = math.sqrt(0.75 * 0.25 / len(first))
    assert abs(float(first.double().mean()) - 0.75) < 4 * se


# --- against exact references -----------------------------------------------------------

def test_statistics_match_enumeration_of_every_minibatch(net):
    """Sigma = the covariance of the minibatch gradient over all C(M, S) batches of S
    distinct samples (each gradient by autograd); H by dense autograd."""
    model, x, y = net
    s = 2
    batch_grads = []
    for idx in itertools.combinations(range(len(y)), s):
        idx = list(idx)
        g = torch.autograd.functional.jacobian(flat_loss(model, CE, x[idx], y[idx]),
                                               flat_params(model))
        batch_grads.append(g)
    gb = torch.stack(batch_grads)
    sigma = (gb - gb.mean(0)).T @ (gb - gb.mean(0)) / len(gb)
    h = reference_hessian(model, CE, x, y)
    metrics, fig = wn.noise_statistics(model, CE, x, y, s, top_k=2, top=5)
    assert metrics["trace_sigma"] == pytest.approx(float(torch.trace(sigma)), rel=1e-10)
    assert metrics["trace_h"] == pytest.approx(float(torch.trace(h)), rel=1e-10)
    cos = float((sigma * h).sum() / (sigma.norm() * h.norm()))
    assert metrics["alignment"] == pytest.approx(cos, rel=1e-10)
    m = len(y)
    assert metrics["scale"] == pytest.approx(
        float(torch.trace(sigma)) / ((1 - s / m) / s * float(torch.trace(h))), rel=1e-10)
    ev_h = torch.linalg.eigvalsh(h).flip(0)[:5]
    np.testing.assert_allclose(fig["h_top"], ev_h.numpy(), rtol=1e-10, atol=1e-14)
    ev_s = torch.linalg.eigvalsh(sigma).flip(0)[:5] * s / (1 - s / m)
    np.testing.assert_allclose(fig["sigma_top"], ev_s.numpy(), rtol=1e-8, atol=1e-14)


def test_isotropic_noise_keeps_the_trace_and_has_the_closed_form_alignment(net):
    model, x, y = net
    sgd, _ = wn.noise_statistics(model, CE, x, y, 2, top_k=2)
    iso, _ = wn.noise_statistics(model, CE, x, y, 2, noise="isotropic", top_k=2)
    assert iso["trace_sigma"] == pytest.approx(sgd["trace_sigma"], rel=1e-12)
    assert iso["scale"] == pytest.approx(sgd["scale"], rel=1e-12)
    h = reference_hessian(model, CE, x, y)
    assert iso["alignment"] == pytest.approx(
        float(torch.trace(h) / (math.sqrt(h.shape[0]) * h.norm())), rel=1e-10)


def test_eq4_hessian_is_fisher_minus_the_second_term(net):
    """Eq. 4: H = (1/M) sum g_k g_k^T - (1/M) sum (1/f_k) hess f_k, f_k = softmax(z_k)[y_k]."""
    model, x, y = net
    theta0 = flat_params(model)
    f0 = torch.softmax(model(x), -1).gather(1, y[:, None]).squeeze(1).detach()
    prob_of_label = flat_loss(
        model, lambda z, t: (torch.softmax(z, -1).gather(1, t[:, None]).squeeze(1) / f0).mean(),
        x, y)
    second = torch.autograd.functional.hessian(prob_of_label, theta0)
    grads = Problem(model, CE, (x, y)).per_sample_gradients(x, y)
    fisher = grads.T @ grads / len(y)
    torch.testing.assert_close(fisher - second, reference_hessian(model, CE, x, y),
                               rtol=0, atol=1e-12)


def test_fisher_averaged_over_model_labels_is_the_gauss_newton_matrix(net):
    """E_{y ~ softmax f(x)} F = G for softmax cross-entropy: the premise the 'model' labels
    realise (true_fisher_gap measures one draw's distance from it)."""
    model, x, _ = net
    probs = torch.softmax(model(x), -1).detach()
    prob = Problem(model, CE, (x, torch.zeros(len(x), dtype=torch.long)))
    expected = 0
    for c in range(probs.shape[1]):
        g = prob.per_sample_gradients(x, torch.full((len(x),), c, dtype=torch.long))
        expected = expected + (g * probs[:, c:c + 1]).T @ g / len(x)
    gauss_newton = hb.ggn(model, CE, (x, torch.zeros(len(x), dtype=torch.long)),
                          dtype=F64).dense()
    torch.testing.assert_close(expected, gauss_newton, rtol=0, atol=1e-12)


# --- the experiment ---------------------------------------------------------------------

def test_registered_and_runs_at_tiny_size():
    exp = registered("wei_schwab_noise_covariance", wn.wei_schwab_noise_covariance, wn.METRICS)
    run = exp(dict(TINY), 0, torch.device("cpu"))
    assert set(run.metrics) == set(wn.METRICS)
    m = run.metrics
    assert m["train_loss"] < TINY["checkpoint_loss"]
    assert m["num_params"] == 64 * 3 + 3 + 3 * 10 + 10
    s, n = TINY["batch_size"], TINY["num_samples"]
    assert m["scale"] == pytest.approx(m["trace_sigma"] / ((1 - s / n) / s * m["trace_h"]))
    again = exp(dict(TINY), 0, torch.device("cpu"))
    assert again.metrics == run.metrics
    model = exp({**TINY, "labels": "model"}, 0, torch.device("cpu"))
    # the same checkpoint, other labels
    assert model.metrics["train_loss"] == m["train_loss"]
    assert model.metrics["trace_sigma"] != m["trace_sigma"]


@pytest.mark.parametrize("change, match", [
    ({"batch_size": 40}, "batch_size"), ({"batch_size": 0}, "batch_size"),
    ({"hidden": []}, "hidden"), ({"lr": 0.0}, "lr"), ({"checkpoint_loss": -1.0}, "checkpoint_loss"),
    ({"max_epochs": 0}, "max_epochs"),
    ({"labels": "random"}, "labels"), ({"noise": "diag"}, "noise"),
])
def test_rejects_bad_parameters(change, match):
    assert_rejects(wn.wei_schwab_noise_covariance, {**TINY, **change}, match)


def test_claim_file_loads():
    claim = load_claim(CLAIM)
    assert claim.experiment == "wei_schwab_noise_covariance"
    assert {c.name for c in claim.controls} == {"isotropic-noise", "interpolation"}


def test_figure_draws_every_record():
    run = wn.wei_schwab_noise_covariance(dict(TINY), 0, torch.device("cpu"))
    records = [record(run, {**wn.DEFAULTS, **TINY, "labels": lab}, seed=s)
               for s in (0, 1) for lab in ("data", "model")]
    fig = wn.plot_noise_covariance(records)
    assert isinstance(fig, Figure)
    left, right = fig.axes
    assert len(right.lines) == len(records) + 1        # one point per record and Eq. 5's star
    assert len(left.lines) == 2 * len(records)         # H and rescaled Sigma per record
    assert "Eq. 5" in fig.get_suptitle()
