"""Pieces of the Wei & Schwab Fig. 2a experiment (hessbench/experiments/wei_schwab_negative.py).

References: closed forms (entropy of the smoothed target, window means, sums of a
planted spectrum) and a dense float64 Hessian from torch.func.hessian.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from hessbench.experiments import wei_schwab_negative as wsn
from hessbench.experiments.registry import get_experiment
from hessbench.models import mlp

CLAIM = Path(__file__).resolve().parents[1] / "claims" / "wei-schwab-negative-eigenvalues.toml"

TINY = {"num_samples": 40, "hidden": 4, "gd_steps": 60, "batch_sizes": [4, 8, 20],
        "learning_rates": [0.1, 0.1, 0.05], "equilibration_time": 1.0, "num_evals": 6}


# --- the floor of the label-smoothed cross-entropy -------------------------------------

@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3])
def test_smoothed_entropy_is_the_loss_at_p_equal_q(eps):
    k = 10
    q = torch.full((k,), eps / k, dtype=torch.float64)
    q[3] += 1 - eps
    logits = torch.log(q.clamp_min(1e-300)).expand(5, k)
    loss = nn.CrossEntropyLoss(label_smoothing=eps)(logits, torch.full((5,), 3))
    assert wsn.smoothed_target_entropy(k, eps) == pytest.approx(loss.item(), abs=1e-12)


@settings(max_examples=30, deadline=None, derandomize=True)
@given(eps=st.floats(0.0, 0.9), seed=st.integers(0, 10_000))
def test_loss_above_floor_is_mean_kl(eps, seed):
    """CE_eps - H(q) = mean_i KL(q_i || softmax(f_i)) >= 0 for arbitrary logits."""
    gen = torch.Generator().manual_seed(seed)
    logits = 3 * torch.randn(7, 10, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, 10, (7,), generator=gen)
    q = nn.functional.one_hot(labels, 10).double() * (1 - eps) + eps / 10
    kl = nn.functional.kl_div(logits.log_softmax(1), q, reduction="batchmean")
    excess = (nn.CrossEntropyLoss(label_smoothing=eps)(logits, labels).item()
              - wsn.smoothed_target_entropy(10, eps))
    assert excess == pytest.approx(kl.item(), abs=1e-12)
    assert excess >= -1e-12


@pytest.mark.parametrize("k, eps", [(1, 0.1), (10, -0.1), (10, 1.0)])
def test_smoothed_entropy_rejects_bad_input(k, eps):
    with pytest.raises(ValueError):
        wsn.smoothed_target_entropy(k, eps)


# --- equilibrium window --------------------------------------------------------------

def test_window_mean_and_drift_on_known_sequence():
    values = [9.0, 9.0, 1.0, 2.0, 3.0, 4.0]
    assert wsn.window_mean(values, 0.5) == pytest.approx(3.0)       # last 3: 2, 3, 4
    assert wsn.window_mean(values, 0.3) == pytest.approx(3.5)       # ceil(1.8) = 2: 3, 4
    assert wsn.window_mean(values, 1.0) == pytest.approx(28 / 6)
    assert wsn.window_drift(values, 4 / 6) == pytest.approx(1.5 - 3.5)  # [1, 2] vs [3, 4]
    assert wsn.window_drift([5.0] * 10, 0.5) == 0.0


@pytest.mark.parametrize("fraction", [0.0, -0.5, 1.5])
def test_window_rejects_bad_fraction(fraction):
    with pytest.raises(ValueError, match="fraction"):
        wsn.window_mean([1.0, 2.0], fraction)


def test_window_rejects_empty_and_too_short():
    with pytest.raises(ValueError):
        wsn.window_mean([], 0.5)
    with pytest.raises(ValueError, match=">= 2"):
        wsn.window_drift([1.0, 2.0, 3.0], 0.2)


@pytest.mark.parametrize("time, lr, steps", [(50.0, 0.1, 500), (100.0, 0.03, 3334),
                                              (0.7, 0.1, 7), (1.0, 3.0, 1)])
def test_equilibration_steps_cover_the_time(time, lr, steps):
    assert wsn.equilibration_steps(time, lr) == steps


# --- negative / positive mass ----------------------------------------------------------

def test_spectrum_sums_on_planted_spectrum():
    s = wsn.spectrum_sums(np.array([-3.0, -0.5, -1e-17, 0.0, 1e-17, 2.0, 5.0]))
    assert (s.neg_sum, s.pos_sum, s.neg_count, s.pos_count) == (-3.5, 7.0, 2, 2)
    assert s.tol == pytest.approx(7 * np.finfo(np.float64).eps * 5.0)
    explicit = wsn.spectrum_sums([-1.0, -0.1, 0.1, 1.0], tol=0.5)
    assert (explicit.neg_sum, explicit.pos_sum) == (-1.0, 1.0)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=50))
def test_spectrum_sums_partition_the_trace(values):
    s = wsn.spectrum_sums(values)
    ev = np.asarray(values)
    small = ev[np.abs(ev) <= s.tol]
    assert s.neg_sum <= 0 <= s.pos_sum
    assert s.neg_count + s.pos_count + small.size == ev.size
    assert s.neg_sum + s.pos_sum + small.sum() == pytest.approx(ev.sum(), abs=1e-9 * (1 + np.abs(ev).sum()))


@pytest.mark.parametrize("bad", [[], [1.0, float("nan")]])
def test_spectrum_sums_rejects_bad_input(bad):
    with pytest.raises(ValueError):
        wsn.spectrum_sums(bad)


# --- exact spectrum against torch.func.hessian -------------------------------------------

def test_exact_spectrum_matches_dense_autograd_hessian():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(12, 64, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 10, (12,), generator=gen)
    model = mlp(64, [3], 10, seed=1, dtype=torch.float64)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    flat0 = torch.cat([p.detach().flatten() for p in model.parameters()])

    def loss_of(flat):
        chunks = torch.split(flat, [math.prod(s) for s in shapes])
        params = {n: c.view(s) for n, c, s in zip(names, chunks, shapes)}
        return loss_fn(torch.func.functional_call(model, params, (x,)), y)

    reference = np.linalg.eigvalsh(torch.func.hessian(loss_of)(flat0).numpy())
    got = wsn.exact_spectrum(model, loss_fn, x, y)
    np.testing.assert_allclose(got, reference, atol=1e-10 * np.abs(reference).max())


# --- the experiment end to end (tiny) -----------------------------------------------------

@pytest.fixture(scope="module")
def tiny_run():
    return wsn.wei_schwab_negative(TINY, 3, torch.device("cpu"))


def test_experiment_is_deterministic_under_a_seed(tiny_run):
    again = wsn.wei_schwab_negative(TINY, 3, torch.device("cpu"))
    assert again.metrics == tiny_run.metrics
    other = wsn.wei_schwab_negative(TINY, 4, torch.device("cpu"))
    assert other.metrics["train_loss"] != tiny_run.metrics["train_loss"]


def test_experiment_metrics_are_consistent(tiny_run):
    m = tiny_run.metrics
    assert set(m) == set(wsn.METRICS)
    n_pairs = len(TINY["batch_sizes"])
    for key in ("train_loss", "neg_sum", "pos_sum", "equilibration_drift", "sgd_steps"):
        assert len(m[key]) == n_pairs
    assert m["num_params"] == 64 * 4 + 4 + 4 * 10 + 10
    assert m["sgd_steps"] == [10, 10, 20]
    assert all(s <= 0 for s in m["neg_sum"]) and all(s > 0 for s in m["pos_sum"])
    floor = wsn.smoothed_target_entropy(10, 0.1)
    for ce, kl in zip(m["train_loss_ce"], m["train_loss_kl"]):
        assert kl == pytest.approx(ce - floor, abs=1e-14)
    gd_ce = m["gd_loss_kl"] + floor
    for ce, x in zip(m["train_loss_ce"], m["train_loss"]):
        assert x == pytest.approx(ce - gd_ce, abs=1e-12)
    w, b, r2 = wsn._fit(m["train_loss"], m["neg_sum"])
    assert (m["fit_slope"], m["fit_intercept"], m["fit_r2"]) == (w, b, r2)


def test_fit_recovers_an_exact_line():
    x = np.linspace(0.0, 1e-3, 6)
    w, b, r2 = wsn._fit(x, -40.0 * x - 1e-5)
    assert (w, b, r2) == (pytest.approx(-40.0), pytest.approx(-1e-5, abs=1e-15), pytest.approx(1.0))


@pytest.mark.parametrize("override, match", [
    ({"batch_sizes": [5, 10]}, "same length"),
    ({"batch_sizes": [5, 10], "learning_rates": [0.1, 0.1]}, "at least 3"),
    ({"lr": 0.1}, "unknown params"),
    ({"average_fraction": 0.0}, "average_fraction"),
    ({"num_evals": 1}, "num_evals"),
])
def test_experiment_rejects_bad_params(override, match):
    with pytest.raises(ValueError, match=match):
        wsn.wei_schwab_negative({**TINY, **override}, 0, torch.device("cpu"))


def test_registered_with_figure(tiny_run):
    exp = get_experiment("wei_schwab_negative")
    assert exp.func is wsn.wei_schwab_negative and exp.metrics == frozenset(wsn.METRICS)
    record = {"point": {}, "params": TINY, "seed": 3, "metrics": dict(tiny_run.metrics),
              "figure_data": dict(tiny_run.figure_data)}
    fig = exp.figure([record])
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any(f"{tiny_run.metrics['fit_slope']:.4g}" in t for t in legend)


def test_claim_file_loads_and_names_known_metrics():
    from hessbench.claims.spec import load_claim

    claim = load_claim(CLAIM)
    assert claim.experiment == "wei_schwab_negative"
    for profile in ("smoke", "paper"):
        params = claim.setup(profile).params
        assert len(params["batch_sizes"]) == len(params["learning_rates"]) >= 8
        assert set(params) <= set(wsn.DEFAULTS)
