"""Pieces of the Wei & Schwab Fig. 2a experiment (hessbench/experiments/wei_schwab_negative.py).

References: closed forms (entropy of the smoothed target, window means, sums of a
planted spectrum) and a dense float64 Hessian from torch.func.hessian.
"""
from __future__ import annotations

import copy
import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from hessbench import stats
from hessbench.experiments import wei_schwab_negative as wsn
from hessbench.models import mlp
from tests.experiment_helpers import assert_rejects, record, registered

CLAIMS = Path(__file__).resolve().parents[2] / "claims"

TINY = {"num_samples": 40, "hidden": 4, "gd_steps": 60, "batch_sizes": [4, 8, 20],
        "learning_rates": [0.1, 0.1, 0.05], "equilibration_time": 1.0, "num_evals": 8,
        "snapshots": 2}


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


def test_batch_means_se_on_known_sequence():
    values = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    # block means 1.5, 3.5, 5.5: std 2, SE 2 / sqrt(3)
    assert wsn.batch_means_se(values, 3) == pytest.approx(2 / math.sqrt(3))
    assert wsn.batch_means_se([5.0] * 7) == 0.0


@settings(max_examples=30, deadline=None, derandomize=True)
@given(st.lists(st.floats(-1e3, 1e3), min_size=2, max_size=12))
def test_batch_means_se_with_one_value_per_block_is_the_plain_se(values):
    plain = np.std(values, ddof=1) / math.sqrt(len(values))
    got = wsn.batch_means_se(values, n_batches=len(values) + 3)
    assert got == pytest.approx(plain, rel=1e-9, abs=1e-9)


def test_window_drift_se_combines_the_halves():
    values = [9.0, 9.0, 1.0, 3.0, 2.0, 6.0]  # window (4 / 6): halves [1, 3] and [2, 6]
    expected = math.hypot(1.0, 2.0)           # plain SEs: std/sqrt(2) = 1 and 2
    assert wsn.window_drift_se(values, 4 / 6) == pytest.approx(expected)


def test_batch_means_and_drift_se_reject_short_input():
    with pytest.raises(ValueError, match=">= 2 values"):
        wsn.batch_means_se([1.0])
    with pytest.raises(ValueError, match=">= 4"):
        wsn.window_drift_se([1.0, 2.0, 3.0, 4.0], 0.75)


@pytest.mark.parametrize("time, lr, num_evals, every, n", [
    (200.0, 0.1, 100, 20, 100), (200.0, 0.03, 100, 66, 102), (1.0, 0.05, 8, 2, 10),
    (0.3, 0.1, 100, 1, 3)])
def test_eval_schedule_on_known_cases(time, lr, num_evals, every, n):
    assert wsn.eval_schedule(time, lr, num_evals) == (every, n)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(time=st.floats(0.01, 500.0), lr=st.floats(1e-3, 1.0), num_evals=st.integers(1, 300))
def test_eval_schedule_covers_the_time_within_one_interval(time, lr, num_evals):
    every, n = wsn.eval_schedule(time, lr, num_evals)
    steps = wsn.equilibration_steps(time, lr)
    assert every >= 1 and n * every >= steps > (n - 1) * every
    assert n >= min(num_evals, steps)


@pytest.mark.parametrize("n, fraction, k, expected", [
    (100, 0.5, 4, [62, 75, 87, 100]), (10, 0.5, 5, [6, 7, 8, 9, 10]), (9, 1.0, 3, [3, 6, 9]),
    (10, 0.5, 1, [10])])
def test_snapshot_indices_on_known_cases(n, fraction, k, expected):
    assert wsn.snapshot_indices(n, fraction, k) == expected


@settings(max_examples=60, deadline=None, derandomize=True)
@given(n=st.integers(1, 400), fraction=st.floats(0.01, 1.0), data=st.data())
def test_snapshot_indices_lie_in_the_window_and_end_at_the_end(n, fraction, data):
    w = math.ceil(fraction * n)
    k = data.draw(st.integers(1, w))
    idx = wsn.snapshot_indices(n, fraction, k)
    assert len(idx) == k and idx[-1] == n
    assert all(a < b for a, b in itertools.pairwise(idx))
    assert idx[0] > n - w


@pytest.mark.parametrize("k", [0, 6])
def test_snapshot_indices_reject_too_many_or_none(k):
    with pytest.raises(ValueError, match="snapshots"):
        wsn.snapshot_indices(10, 0.5, k)


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

def test_exact_hessian_matches_dense_autograd_hessian():
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

    reference = torch.func.hessian(loss_of)(flat0)
    got = wsn.exact_hessian(model, loss_fn, x, y)
    torch.testing.assert_close(got, reference, rtol=0, atol=1e-12 * reference.abs().max().item())


def test_a3_equilibrium_excess_is_c_times_the_trace():
    """<L> - L* = (eta / 4S)(1 - S/M) Tr H; no excess at full batch (S = M)."""
    assert wsn.a3_equilibrium_excess(0.1, 5, 500, 20.0) == pytest.approx(0.1 / 20 * 0.99 * 20.0)
    assert wsn.a3_equilibrium_excess(0.1, 500, 500, 20.0) == 0.0
    with pytest.raises(ValueError, match="batch_size"):
        wsn.a3_equilibrium_excess(0.1, 501, 500, 20.0)


def test_noise_to_hessian_trace_of_unit_residual_least_squares():
    """MSE l = (w.x - y)^2 at w = 0 with y = +-1: g_k = -2 y_k x_k, H = (2/M) sum x x^T, so
    Tr((1/M) sum g g^T) / Tr H = 4 sum |x|^2 / (2 sum |x|^2) = 2."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(7, 3, generator=gen, dtype=torch.float64)
    y = torch.tensor([1.0, -1, 1, 1, -1, -1, 1], dtype=torch.float64)[:, None]
    model = nn.Linear(3, 1, bias=False).double()
    with torch.no_grad():
        model.weight.zero_()
    trace = 2.0 * float((x * x).sum()) / len(x)
    assert wsn.noise_to_hessian_trace(model, nn.MSELoss(), x, y, trace) == pytest.approx(2.0,
                                                                                        rel=1e-12)


# --- the GD floor and the segmented SGD run ------------------------------------------------

def _tiny_problem(seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(30, 64, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 10, (30,), generator=gen)
    return mlp(64, [3], 10, seed=seed, dtype=torch.float64), nn.CrossEntropyLoss(label_smoothing=0.1), x, y


def test_gd_floor_is_the_gd_trajectory_from_the_start_loss():
    model, loss_fn, x, y = _tiny_problem()
    before = [q.clone() for q in model.parameters()]
    floor = wsn._gd_floor(model, loss_fn, x, y, lr=0.5, time=3.0)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # left unchanged
    ref = wsn.train(copy.deepcopy(model), loss_fn, x, y, lr=0.5, steps=6, eval_every=1).losses
    assert floor(0.0) == 0.0
    np.testing.assert_allclose(floor(0.5 * np.arange(7)), np.asarray(ref) - ref[0], rtol=0, atol=1e-15)
    assert floor(0.25) == pytest.approx((ref[1] - ref[0]) / 2)  # linear between GD steps


def test_sgd_pair_in_one_segment_is_one_sgd_run():
    model, loss_fn, x, y = _tiny_problem(1)
    [(losses, end)] = list(wsn._sgd_pair(model, loss_fn, x, y, batch_size=4, lr=0.1, eval_every=3,
                                         snapshot_at=[5], seed=7, pair=2))
    ref_model = copy.deepcopy(model)
    ref = wsn.train(ref_model, loss_fn, x, y, lr=0.1, steps=15, batch_size=4, eval_every=3,
                    seed=wsn._pair_seed(7, 2))
    assert losses == ref.losses[1:]
    assert all(torch.equal(a, b) for a, b in zip(end.parameters(), ref_model.parameters()))


def test_sgd_pair_segments_end_at_the_snapshots():
    model, loss_fn, x, y = _tiny_problem(2)
    counts, losses_at_end = [], []
    for losses, at in wsn._sgd_pair(model, loss_fn, x, y, batch_size=5, lr=0.1, eval_every=2,
                                    snapshot_at=[3, 4, 7], seed=0, pair=0):
        counts.append(len(losses))
        losses_at_end.append((losses[-1], wsn.full_loss(at, loss_fn, x, y)))
    assert counts == [3, 1, 3]
    for recorded, at_snapshot in losses_at_end:   # the model yielded is the evaluated iterate
        assert recorded == at_snapshot


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
    for key in ("train_loss", "train_loss_window", "neg_sum", "pos_sum", "equilibration_drift",
                "equilibration_drift_se", "sgd_steps", "snapshot_neg_sum"):
        assert len(m[key]) == n_pairs
    assert m["num_params"] == 64 * 4 + 4 + 4 * 10 + 10
    assert m["sgd_steps"] == [10, 10, 20]
    assert all(s <= 0 for s in m["neg_sum"]) and all(s > 0 for s in m["pos_sum"])
    for snaps_x, snaps_y, x, y in zip(m["snapshot_train_loss"], m["snapshot_neg_sum"],
                                      m["train_loss"], m["neg_sum"]):
        assert len(snaps_x) == len(snaps_y) == TINY["snapshots"]
        assert (x, y) == (pytest.approx(np.mean(snaps_x)), pytest.approx(np.mean(snaps_y)))
    entropy = wsn.smoothed_target_entropy(10, 0.1)
    for ce, kl in zip(m["train_loss_ce"], m["train_loss_kl"]):
        assert kl == pytest.approx(ce - entropy, abs=1e-14)
    assert all(se >= 0 for se in m["equilibration_drift_se"])
    fit = stats.linear_fit(m["train_loss"], m["neg_sum"])
    assert (m["fit_slope"], m["fit_intercept"], m["fit_r2"]) == (fit.slope, fit.intercept, fit.r2)
    # the sum of negative eigenvalues is concave in H: the averaged Hessian has less
    # negative mass than the average of the snapshots' (Jensen), exactly
    for mean_h, per_iterate in zip(m["neg_sum_mean_hessian"], m["neg_sum"]):
        assert per_iterate - 1e-12 <= mean_h <= 0.0
    for x, c, r in zip(m["train_loss_window"], m["a3_predicted_excess"], m["a3_excess_ratio"]):
        assert r == pytest.approx(x / c, rel=1e-14)
    # a pair at or below the valley floor (ratio <= 0) is off by an infinite factor
    assert m["a3_max_abs_log2_ratio"] == pytest.approx(
        max(abs(math.log2(r)) if r > 0 else math.inf for r in m["a3_excess_ratio"]))


def test_spectra_are_taken_at_the_iterates_whose_loss_is_x(monkeypatch):
    """Pairing: every spectrum after the GD one is taken at a snapshot, and the mean loss
    of the models the spectra see is the pair's train_loss_ce (x up to the GD floor)."""
    seen = []
    original = wsn.exact_hessian

    def recording(model, loss_fn, inputs, targets):
        seen.append(wsn.full_loss(model, loss_fn, inputs, targets))
        return original(model, loss_fn, inputs, targets)

    monkeypatch.setattr(wsn, "exact_hessian", recording)
    m = wsn.wei_schwab_negative(TINY, 3, torch.device("cpu")).metrics
    k = TINY["snapshots"]
    assert len(seen) == 1 + k * len(TINY["batch_sizes"])
    for i, ce in enumerate(m["train_loss_ce"]):
        assert np.mean(seen[1 + k * i: 1 + k * (i + 1)]) == pytest.approx(ce, abs=1e-15)
    gd_ce = m["gd_loss_kl"] + wsn.smoothed_target_entropy(10, 0.1)
    assert seen[0] == pytest.approx(gd_ce, abs=1e-15)


def test_polished_linear_minimum_meets_grad_tol_and_has_no_negative_mass():
    """The linear variant's premise: with grad_tol set, theta_0 is a smooth minimum
    (||g|| <= grad_tol) whose Hessian is PSD up to that residual gradient."""
    params = {**TINY, "num_samples": 100, "hidden": 12, "activation": "linear",
              "grad_tol": 1e-8}
    m = wsn.wei_schwab_negative(params, 0, torch.device("cpu")).metrics
    assert m["gd_grad_norm"] <= 1e-8
    assert -1e-6 < m["gd_neg_sum"] <= 0
    assert abs(m["gd_floor_drop"]) < 1e-12  # GD does not move from a minimum


def test_fit_recovers_an_exact_line():
    x = np.linspace(0.0, 1e-3, 6)
    fit = stats.linear_fit(x, -40.0 * x - 1e-5)
    assert (fit.slope, fit.intercept, fit.r2) == (pytest.approx(-40.0),
                                                  pytest.approx(-1e-5, abs=1e-15),
                                                  pytest.approx(1.0))


@pytest.mark.parametrize("override, match", [
    ({"batch_sizes": [5, 10]}, "same length"),
    ({"batch_sizes": [5, 10], "learning_rates": [0.1, 0.1]}, "at least 3"),
    ({"lr": 0.1}, "unknown params"),
    ({"average_fraction": 0.0}, "average_fraction"),
    ({"num_evals": 6}, "num_evals"),
    ({"snapshots": 5}, "snapshots"),
    ({"snapshots": 0}, "snapshots"),
    ({"activation": "swish9"}, "unknown activation"),
    ({"grad_tol": 0.0}, "grad_tol"),
])
def test_experiment_rejects_bad_params(override, match):
    assert_rejects(wsn.wei_schwab_negative, {**TINY, **override}, match)


def test_registered_with_figure(tiny_run):
    exp = registered("wei_schwab_negative", wsn.wei_schwab_negative, wsn.METRICS)
    fig = exp.figure([record(tiny_run, TINY, 3)])
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any(f"{tiny_run.metrics['fit_slope']:.4g}" in t for t in legend)


@pytest.mark.parametrize("name", ["wei-schwab-negative-eigenvalues",
                                  "wei-schwab-negative-eigenvalues-linear"])
def test_claim_file_loads_and_names_known_metrics(name):
    from hessbench.claims.spec import load_claim

    claim = load_claim(CLAIMS / f"{name}.toml")
    assert claim.experiment == "wei_schwab_negative"
    for profile in ("smoke", "paper"):
        params = claim.setup(profile).params
        assert len(params["batch_sizes"]) == len(params["learning_rates"]) >= 8
        assert set(params) <= set(wsn.DEFAULTS)
