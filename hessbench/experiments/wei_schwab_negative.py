"""Wei & Schwab (2019), §4.1, Fig. 2a, Appendix A.3: negative curvature tracks the loss.

Prediction. Near a degenerate valley of minima SGD does not sit on the valley but
fluctuates around it; the Hessian at such a point has negative eigenvalues in the
(nearly) degenerate directions, and their sum is proportional to the training loss
at equilibrium: sum_{lambda_i < 0} lambda_i = w L + b with w < 0 and b ~ 0 (the paper
fits w = -40.07, b ~ -1e-5 on 500 MNIST samples).

Protocol (one call = one seed):

1. ``num_samples`` digits (8x8, standardised), an MLP 64 -> hidden -> 10 (``activation``:
   "relu", "linear" for a deep linear net, or any other of ``models.mlp``'s), float64,
   label-smoothed cross-entropy CE_eps (``label_smoothing`` = eps; smoothed target
   q = (1 - eps) onehot + eps / K).
2. Full-batch GD at ``gd_lr`` for ``gd_steps`` -> the minimum theta_0 (paper: lr 0.1 for
   10k epochs). On digits GD converges sublinearly; at lr 0.1 the loss still falls by
   ~1e-4 per 25 units of SGD time after 10k steps, as much as the SGD heating to be
   measured, so the default takes lr 1.0 (stable while lr * lambda_max < 2, with
   lambda_max = ``gd_lambda_max`` reported). With ``grad_tol`` set,
   :func:`hessbench.minimize.minimize` then polishes theta_0 to ||grad L|| <= grad_tol
   (``gd_grad_norm`` reports the norm reached; the ReLU claim leaves it unset).
3. The valley floor's own descent: GD continued from theta_0 (at ``gd_lr``) for the SGD time
   of the pairs; L_GD(t) is its loss after SGD-equivalent time t (gradient-flow time lr * steps).
4. For each pair (batch_sizes[i], learning_rates[i]): SGD from theta_0 for (about)
   ``equilibration_time / lr`` steps, i.e. the same SGD time lr * steps for every pair (a
   mode of curvature lambda relaxes in time ~ 1 / lambda whatever lr is); see
   :func:`eval_schedule`. The full-batch loss is evaluated ``num_evals`` (or a few more) times,
   evenly spaced; the averaging window is the last ``average_fraction`` of them.
5. At ``snapshots`` = K iterates evenly spread over that window (:func:`snapshot_indices`, the
   last one the end point) the loss and the exact Hessian spectrum (dense, float64) of CE_eps
   are taken AT THE SAME ITERATE. The pair's point of Fig. 2a is the mean over its K snapshots
   of x = L(theta_k) - L_GD(t_k) and of y = sum of negative eigenvalues at theta_k.

6. The paper's quantity (A.3 predicts the equilibrium mean Hessian <d_j d_k L>): the negative
   mass of the mean of the K snapshot Hessians (``neg_sum_mean_hessian``; by concavity of
   the negative mass it is at most the snapshots' mean in magnitude) beside the per-iterate
   one (``neg_sum``); both are fitted against ``train_loss``.
7. The theory's premise, A.3's equilibrium ``<L> - L* = (eta / 4S)(1 - S/M) Tr H``
   (``a3_predicted_excess`` with Tr H at theta_0, ``a3_excess_ratio`` = the window-mean loss
   above the GD trajectory over it, ``a3_max_abs_log2_ratio`` its worst factor), and Eq. 5's
   premise that the per-sample gradient second moment is H (``gd_noise_trace_ratio`` at
   theta_0). ``neg_to_pos_magnitude`` is |lambda_min| / lambda_max per pair (Sagun §3.4).

The training loss of the fit (``train_loss``) is measured from the valley floor, as in the
paper's analysis where the loss vanishes on the valley: the snapshot loss minus the loss of
the GD trajectory at the same SGD time. ``train_loss_window`` is the same over every
evaluation of the window (the loss the spectra do not see), ``train_loss_kl`` the snapshot
loss from CE_eps's absolute floor H(q) (= the mean KL(q || softmax f)), which a net too small
to interpolate the smoothed labels never reaches; ``train_loss_ce`` the raw CE_eps.
``equilibration_drift`` (+- ``equilibration_drift_se``, batch means) is the mean of the
window's first half minus its second half, above the GD floor.

Why a linear variant (claim ``wei-schwab-negative-eigenvalues-linear``). The prediction
is about a smooth valley of minima: there the Hessian is PSD, so the negative mass is 0 at
loss 0. Near the valley, with t along it and n across, L = L* + 1/2 n^T A(t) n + O(n^3),
so in (t, n) coordinates the tangent block of H is 1/2 n^T A''(t) n, the cross block
A'(t) n and the normal block A(t) + O(n); the tangent eigenvalues (Schur complement) are
O(|n|^2), proportional to the loss above the valley, with either sign; in Euclidean
coordinates a curved valley adds grad L . (its curvature) = O(|n|) to the tangent block.
A ReLU net's minima can sit on kinks, where the GD point has negative mass of its own
(``gd_neg_sum``); a deep linear net's minima are smooth (the factorisations of the best
product matrix). Measured values are in the claim files' histories.

Eigenvalues within the round-off of a float64 eigensolver, |lambda| <= n eps_64 max|lambda|,
count as zero (see :func:`spectrum_sums`). The fit is ordinary least squares
(:func:`hessbench.stats.linear_fit`).

References
----------
M. Wei and D. J. Schwab, "How noise affects the Hessian spectrum in overparameterized
neural networks", ICLR 2020: §4.1 and Fig. 2a, Appendix A.3.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

import hessbench as hb
from hessbench import stats
from hessbench.data import digits
from hessbench.experiments.registry import Measurement, experiment
from hessbench.losses import smoothed_target_entropy
from hessbench.minimize import grad_norm, minimize
from hessbench.models import mlp
from hessbench.problem import LossFn, Problem
from hessbench.training import full_loss, train

NUM_CLASSES = 10
IN_DIM = 64

DEFAULTS: dict[str, Any] = {
    "num_samples": 500,
    "hidden": 20,
    "activation": "relu",
    "label_smoothing": 0.1,
    "gd_lr": 1.0,
    "gd_steps": 10_000,
    "grad_tol": None,
    "batch_sizes": [5, 6, 7, 8, 10, 13, 17, 5],
    "learning_rates": [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.03],
    "equilibration_time": 200.0,
    "num_evals": 100,
    "average_fraction": 0.5,
    "snapshots": 4,
}

METRICS = ["train_loss", "train_loss_window", "train_loss_kl", "train_loss_ce",
           "equilibration_drift", "equilibration_drift_se", "neg_sum", "pos_sum", "neg_count",
           "neg_to_pos_mass", "lambda_min", "lambda_max", "snapshot_train_loss",
           "snapshot_neg_sum", "batch_size", "learning_rate", "noise_scale", "sgd_steps",
           "fit_slope", "fit_intercept", "fit_r2", "gd_loss_kl", "gd_grad_norm", "gd_neg_sum",
           "gd_lambda_max", "gd_floor_drop", "num_params",
           "neg_sum_mean_hessian", "neg_to_pos_magnitude", "gd_trace", "gd_noise_trace_ratio",
           "a3_predicted_excess", "a3_excess_ratio", "a3_max_abs_log2_ratio",
           "fit_mean_hessian_slope", "fit_mean_hessian_intercept", "fit_mean_hessian_r2"]

PUBLISHED_LINE = (-40.07, -1.22e-5)
"""Fig. 2a's caption: 'best fit line, y = wx + b with w = -40.07 and b = -1.22 * 10^-5'."""


def averaging_window(values: Sequence[float], fraction: float) -> np.ndarray:
    """The last ``ceil(fraction * len(values))`` values: the equilibrium averaging window."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    if len(values) == 0:
        raise ValueError("the averaging window of an empty sequence is undefined")
    return np.asarray(values[-math.ceil(fraction * len(values)):], dtype=np.float64)


def window_mean(values: Sequence[float], fraction: float) -> float:
    """Mean over :func:`averaging_window` (the equilibrium training loss)."""
    return float(averaging_window(values, fraction).mean())


def window_drift(values: Sequence[float], fraction: float) -> float:
    """Mean of the window's first half minus that of its second half (0 at equilibrium,
    > 0 while the loss still falls). Needs a window of at least 2 values."""
    window = averaging_window(values, fraction)
    if window.size < 2:
        raise ValueError(f"window_drift needs a window of >= 2 values, got {window.size}")
    half = window.size // 2
    return float(window[:half].mean() - window[half:].mean())


def batch_means_se(values: Sequence[float], n_batches: int = 5) -> float:
    """Standard error of the mean of a correlated series by batch means.

    The series is cut into ``b = min(n_batches, len(values))`` contiguous blocks of (nearly)
    equal size; SE = std(block means, ddof=1) / sqrt(b). Blocks longer than the correlation
    time make the block means independent; with ``b = len(values)`` it is the plain SE.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.size < 2 or n_batches < 2:
        raise ValueError(f"batch means need >= 2 values and n_batches >= 2, got {v.size}, {n_batches}")
    means = np.array([block.mean() for block in np.array_split(v, min(n_batches, v.size))])
    return float(means.std(ddof=1) / math.sqrt(means.size))


def window_drift_se(values: Sequence[float], fraction: float, n_batches: int = 5) -> float:
    """Standard error of :func:`window_drift`: batch-means SEs of the two halves in quadrature.

    Needs a window of at least 4 values (two per half)."""
    window = averaging_window(values, fraction)
    half = window.size // 2
    if half < 2:
        raise ValueError(f"window_drift_se needs a window of >= 4 values, got {window.size}")
    return math.hypot(batch_means_se(window[:half], n_batches), batch_means_se(window[half:], n_batches))


@dataclass(frozen=True)
class SpectrumSums:
    """Negative and positive mass of a spectrum; |lambda| <= ``tol`` counts as zero."""

    neg_sum: float
    pos_sum: float
    neg_count: int
    pos_count: int
    tol: float


def spectrum_sums(eigenvalues: np.ndarray | Sequence[float], tol: float | None = None) -> SpectrumSums:
    """Sum (and count) of the eigenvalues below ``-tol`` and above ``tol``.

    Default ``tol = n * eps_64 * max|lambda|``: a backward-stable symmetric eigensolver
    returns each eigenvalue within about that of the exact one, so smaller magnitudes
    are indistinguishable from zero (the exactly flat directions of a ReLU net).
    """
    ev = np.asarray(eigenvalues, dtype=np.float64).ravel()
    if ev.size == 0 or not np.all(np.isfinite(ev)):
        raise ValueError("eigenvalues must be a non-empty array of finite numbers")
    if tol is None:
        tol = ev.size * np.finfo(np.float64).eps * float(np.max(np.abs(ev)))
    if tol < 0:
        raise ValueError(f"tol must be >= 0, got {tol}")
    neg, pos = ev[ev < -tol], ev[ev > tol]
    return SpectrumSums(neg_sum=float(neg.sum()), pos_sum=float(pos.sum()),
                        neg_count=int(neg.size), pos_count=int(pos.size), tol=float(tol))


def equilibration_steps(equilibration_time: float, lr: float) -> int:
    """SGD steps covering the time ``lr * steps >= equilibration_time``."""
    if equilibration_time <= 0 or lr <= 0:
        raise ValueError(f"equilibration_time and lr must be > 0, got {equilibration_time}, {lr}")
    return math.ceil(equilibration_time / lr - 1e-9)


def eval_schedule(equilibration_time: float, lr: float, num_evals: int) -> tuple[int, int]:
    """(eval_every, n_evals) of an SGD run of time ``equilibration_time`` at ``lr``.

    S = :func:`equilibration_steps`; eval_every = max(1, S // num_evals) steps and
    n_evals = ceil(S / eval_every) >= num_evals evaluations, so the run has
    n_evals * eval_every >= S steps (time >= ``equilibration_time``, less than one
    evaluation interval more) and every evaluation is on the same grid.
    """
    if num_evals < 1:
        raise ValueError(f"num_evals must be >= 1, got {num_evals}")
    steps = equilibration_steps(equilibration_time, lr)
    every = max(1, steps // num_evals)
    return every, math.ceil(steps / every)


def snapshot_indices(n_evals: int, fraction: float, k: int) -> list[int]:
    """1-based indices of ``k`` evaluations spread evenly over the averaging window.

    The window is the last w = ceil(fraction * n_evals) evaluations (:func:`averaging_window`);
    it is cut into k equal parts and the last evaluation of each part is taken, so the
    last snapshot is the end point: n_evals - w + floor((j + 1) w / k), j = 0..k-1.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    w = math.ceil(fraction * n_evals)
    if not 1 <= k <= w:
        raise ValueError(f"need 1 <= snapshots <= window size {w} (n_evals {n_evals}, "
                         f"fraction {fraction}), got {k}")
    return [n_evals - w + (j + 1) * w // k for j in range(k)]


def exact_hessian(model: nn.Module, loss_fn: LossFn, inputs: torch.Tensor,
                  targets: torch.Tensor) -> torch.Tensor:
    """The dense float64 full-batch loss Hessian (n x n)."""
    return hb.hessian(model, loss_fn, (inputs, targets), dtype=torch.float64).dense()


def a3_equilibrium_excess(lr: float, batch_size: int, num_samples: int, trace: float) -> float:
    """App. A.3's equilibrium loss above the valley: <L> - L* = C Tr H with
    C = (eta / 4S)(1 - S/M) (Eq. 8-11 with the noise premise Eq. 5, C_ii = (1/S)(1 - S/M) lambda_i)."""
    if not 1 <= batch_size <= num_samples:
        raise ValueError(f"need 1 <= batch_size <= num_samples, got {batch_size}, {num_samples}")
    return lr / (4.0 * batch_size) * (1.0 - batch_size / num_samples) * trace


def noise_to_hessian_trace(model: nn.Module, loss_fn: LossFn, inputs: torch.Tensor,
                           targets: torch.Tensor, trace: float) -> float:
    """Tr((1/M) sum_k g_k g_k^T) / Tr H: Eq. 5's premise that the per-sample gradient second
    moment is the Hessian (1 where it holds), with g_k the per-sample gradients."""
    problem = Problem(model, loss_fn, [(inputs, targets)], dtype=torch.float64)
    g = problem.per_sample_gradients(inputs, targets)
    return float((g * g).sum() / len(inputs)) / trace


def _check_params(p: dict[str, Any]) -> None:
    bs, lrs = list(p["batch_sizes"]), list(p["learning_rates"])
    if len(bs) != len(lrs):
        raise ValueError(f"batch_sizes ({len(bs)}) and learning_rates ({len(lrs)}) must pair "
                         "up one to one: give lists of the same length")
    if len(bs) < 3:
        raise ValueError(f"a linear fit needs at least 3 (batch size, lr) pairs, got {len(bs)}")
    if not 0.0 < p["average_fraction"] <= 1.0:
        raise ValueError(f"average_fraction must be in (0, 1], got {p['average_fraction']}")
    window = math.ceil(p["average_fraction"] * int(p["num_evals"]))
    if window < 4:
        raise ValueError(f"the averaging window (average_fraction * num_evals = {window} "
                         "evaluations) needs >= 4 evaluations for a drift with an error bar: "
                         "raise num_evals")
    if p["grad_tol"] is not None and not float(p["grad_tol"]) > 0:
        raise ValueError(f"grad_tol must be > 0 (or unset: GD only), got {p['grad_tol']}")
    if not 1 <= int(p["snapshots"]) <= window:
        raise ValueError(f"snapshots must be in [1, {window}] (the averaging window), "
                         f"got {p['snapshots']}")


def _pair_seed(seed: int, *keys: int) -> int:
    """An independent minibatch-order seed for run ``seed`` and pair/segment ``keys``."""
    return int(np.random.SeedSequence([seed, *keys]).generate_state(1)[0])


def plot_negative_vs_loss(records: list[dict[str, Any]]) -> Any:
    """Fig. 2a: sum of negative eigenvalues against training loss, with the fitted line.

    Large markers: each pair's mean over its snapshots (the fitted points); small faint
    markers: the individual snapshots (loss and spectrum at the same iterate)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 4), layout="tight")
    ax = fig.add_subplot()
    for rec in records:
        m = rec["metrics"]
        x, y = np.asarray(m["train_loss"]), np.asarray(m["neg_sum"])
        points = ax.scatter(x, y, s=22, label=f"seed {rec['seed']}: SGD equilibria (snapshot means)")
        colour = points.get_facecolor()[0]
        ax.scatter(np.ravel(m["snapshot_train_loss"]), np.ravel(m["snapshot_neg_sum"]), s=6,
                   alpha=0.35, color=colour, label=f"seed {rec['seed']}: snapshots")
        ax.scatter(x, m["neg_sum_mean_hessian"], s=22, marker="D", facecolors="none",
                   edgecolors=colour, label=f"seed {rec['seed']}: snapshot-averaged Hessian")
        ax.scatter([0.0], [m["gd_neg_sum"]], s=30, marker="x", color=colour,
                   label=f"seed {rec['seed']}: GD minimum (not fitted)")
        grid = np.linspace(0.0, float(x.max()), 50)
        w, b = m["fit_slope"], m["fit_intercept"]
        ax.plot(grid, w * grid + b, lw=1, color=colour,
                label=f"y = {w:.4g} x {'+' if b >= 0 else '-'} {abs(b):.2g} "
                      f"(R$^2$ = {m['fit_r2']:.3f})")
    w, b = PUBLISHED_LINE
    top = max(float(np.max(r["metrics"]["train_loss"])) for r in records) if records else 1.0
    ax.plot([0.0, top], [b, w * top + b], "k--", lw=0.8,
            label=f"published: y = {w} x - {abs(b):.3g} (MNIST)")
    ax.axhline(0.0, color="0.7", lw=0.5)
    ax.set_xlabel("training loss above the GD trajectory at the same SGD time")
    ax.set_ylabel("sum of negative eigenvalues")
    ax.set_title("Wei & Schwab Fig. 2a: negative curvature vs loss")
    ax.legend(fontsize=7)
    return fig


def _gd_floor(model: nn.Module, loss_fn: LossFn, inputs: torch.Tensor, targets: torch.Tensor,
              lr: float, time: float) -> Callable[[Any], Any]:
    """L_GD(t) - L_GD(0) for GD continued from ``model`` (left unchanged) up to SGD time ``time``.

    Returns a function of t (piecewise linear between GD steps, t = lr * step)."""
    steps = equilibration_steps(time, lr)
    run = train(copy.deepcopy(model), loss_fn, inputs, targets, lr=lr, steps=steps, eval_every=1)
    times = lr * np.arange(len(run.losses))
    losses = np.asarray(run.losses) - run.losses[0]
    return lambda t: np.interp(t, times, losses)


def _sgd_pair(model: nn.Module, loss_fn: LossFn, inputs: torch.Tensor,
              targets: torch.Tensor, *,
              batch_size: int, lr: float, eval_every: int, snapshot_at: Sequence[int],
              seed: int, pair: int) -> Iterator[tuple[list[float], nn.Module]]:
    """SGD from ``model`` (left unchanged) in segments ending at the evaluation indices
    ``snapshot_at`` (1-based, increasing; the run is ``snapshot_at[-1] * eval_every`` steps).

    Yields per segment its full-batch losses (at eval_every, 2 eval_every, ... steps) and
    the SGD model at the segment's end (one model, trained on by the next segment). Segment j
    draws minibatches from its own seed (segment 0: the pair's seed) and starts a fresh epoch.
    """
    sgd_model = copy.deepcopy(model)
    done = 0
    for j, mark in enumerate(snapshot_at):
        run = train(sgd_model, loss_fn, inputs, targets, lr=lr, steps=(mark - done) * eval_every,
                    batch_size=batch_size, eval_every=eval_every,
                    seed=_pair_seed(seed, pair) if j == 0 else _pair_seed(seed, pair, j))
        done = mark
        yield run.losses[1:], sgd_model


@experiment("wei_schwab_negative", figure=plot_negative_vs_loss, metrics=METRICS,
            defaults=DEFAULTS)
def wei_schwab_negative(p: dict[str, Any], seed: int, device: torch.device) -> Measurement:
    """GD to a minimum, SGD to equilibrium per (batch size, lr) pair, exact spectra at K
    iterates of each equilibrium paired with the loss at those iterates."""
    _check_params(p)
    device = torch.device(device)
    dtype = torch.float64
    inputs, targets = digits(int(p["num_samples"]), seed=seed, dtype=dtype, device=device)
    model = mlp(IN_DIM, [int(p["hidden"])], NUM_CLASSES, activation=p["activation"], seed=seed,
                dtype=dtype, device=device)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=float(p["label_smoothing"]))
    entropy_floor = smoothed_target_entropy(NUM_CLASSES, float(p["label_smoothing"]))
    frac, k_snap, n_eval_min = float(p["average_fraction"]), int(p["snapshots"]), int(p["num_evals"])

    gd = train(model, loss_fn, inputs, targets, lr=float(p["gd_lr"]), steps=int(p["gd_steps"]),
               eval_every=max(1, int(p["gd_steps"]) // 10))
    if p["grad_tol"] is not None:
        minimize(model, loss_fn, inputs, targets, grad_tol=float(p["grad_tol"]),
                 on_unconverged="ignore")
    theta0_loss = full_loss(model, loss_fn, inputs, targets)
    gd_ev = hb.spectrum(exact_hessian(model, loss_fn, inputs, targets))
    gd_trace = float(gd_ev.sum())
    schedules = [eval_schedule(float(p["equilibration_time"]), float(lr), n_eval_min)
                 for lr in p["learning_rates"]]
    longest = max(float(lr) * every * n for lr, (every, n) in zip(p["learning_rates"], schedules))
    floor = _gd_floor(model, loss_fn, inputs, targets, float(p["gd_lr"]), longest)

    keys = ("train_loss", "train_loss_window", "train_loss_kl", "train_loss_ce",
            "equilibration_drift", "equilibration_drift_se", "neg_sum", "pos_sum", "neg_count",
            "neg_to_pos_mass", "lambda_min", "lambda_max", "snapshot_train_loss",
            "snapshot_neg_sum", "sgd_steps", "neg_to_pos_magnitude", "neg_sum_mean_hessian")
    rows: dict[str, list] = {k: [] for k in keys}
    for i, (bs, lr) in enumerate(zip(p["batch_sizes"], p["learning_rates"])):
        lr = float(lr)
        every, n_evals = schedules[i]
        marks = snapshot_indices(n_evals, frac, k_snap)
        evals: list[float] = []
        snap: dict[str, list[float]] = {k: [] for k in ("x", "ce", "neg", "pos", "count", "min", "max")}
        mean_hessian: torch.Tensor | None = None
        for seg_evals, at in _sgd_pair(model, loss_fn, inputs, targets, batch_size=int(bs), lr=lr,
                                       eval_every=every, snapshot_at=marks,
                                       seed=seed, pair=i):
            evals.extend(seg_evals)
            ce = full_loss(at, loss_fn, inputs, targets)
            h = exact_hessian(at, loss_fn, inputs, targets)
            ev = hb.spectrum(h)
            mean_hessian = h if mean_hessian is None else mean_hessian.add_(h)
            del h
            sums = spectrum_sums(ev)
            snap["x"].append(ce - theta0_loss - float(floor(lr * every * len(evals))))
            snap["ce"].append(ce)
            snap["neg"].append(sums.neg_sum)
            snap["pos"].append(sums.pos_sum)
            snap["count"].append(sums.neg_count)
            snap["min"].append(float(ev[0]))
            snap["max"].append(float(ev[-1]))
        above_floor = (np.asarray(evals) - theta0_loss
                       - floor(lr * every * np.arange(1, len(evals) + 1)))
        mean = {k: float(np.mean(v)) for k, v in snap.items()}
        rows["train_loss"].append(mean["x"])
        rows["train_loss_window"].append(window_mean(above_floor, frac))
        rows["train_loss_kl"].append(mean["ce"] - entropy_floor)
        rows["train_loss_ce"].append(mean["ce"])
        rows["equilibration_drift"].append(window_drift(above_floor, frac))
        rows["equilibration_drift_se"].append(window_drift_se(above_floor, frac))
        rows["neg_sum"].append(mean["neg"])
        rows["pos_sum"].append(mean["pos"])
        rows["neg_count"].append(mean["count"])
        rows["neg_to_pos_mass"].append(abs(mean["neg"]) / mean["pos"])
        rows["neg_to_pos_magnitude"].append(abs(min(mean["min"], 0.0)) / mean["max"])
        rows["neg_sum_mean_hessian"].append(
            spectrum_sums(hb.spectrum(mean_hessian.div_(len(snap["x"])))).neg_sum)
        del mean_hessian
        rows["lambda_min"].append(mean["min"])
        rows["lambda_max"].append(mean["max"])
        rows["snapshot_train_loss"].append(snap["x"])
        rows["snapshot_neg_sum"].append(snap["neg"])
        rows["sgd_steps"].append(every * n_evals)

    fit = stats.linear_fit(rows["train_loss"], rows["neg_sum"])
    fit_mean = stats.linear_fit(rows["train_loss"], rows["neg_sum_mean_hessian"])
    bs_list = [int(b) for b in p["batch_sizes"]]
    lr_list = [float(a) for a in p["learning_rates"]]
    predicted = [a3_equilibrium_excess(a, b, int(p["num_samples"]), gd_trace)
                 for a, b in zip(lr_list, bs_list)]
    # no predicted excess (S = M): the ratio is unbounded
    ratios = [x / c if c else math.inf for x, c in zip(rows["train_loss_window"], predicted)]
    metrics = {
        **rows,
        "batch_size": bs_list, "learning_rate": lr_list,
        "noise_scale": [a / b for a, b in zip(lr_list, bs_list)],
        "fit_slope": fit.slope, "fit_intercept": fit.intercept, "fit_r2": fit.r2,
        "fit_mean_hessian_slope": fit_mean.slope,
        "fit_mean_hessian_intercept": fit_mean.intercept, "fit_mean_hessian_r2": fit_mean.r2,
        "gd_trace": gd_trace,
        "gd_noise_trace_ratio": noise_to_hessian_trace(model, loss_fn, inputs, targets, gd_trace),
        "a3_predicted_excess": predicted, "a3_excess_ratio": ratios,
        "a3_max_abs_log2_ratio": max(abs(math.log2(r)) if r > 0 else math.inf for r in ratios),
        "gd_loss_kl": theta0_loss - entropy_floor,
        "gd_grad_norm": grad_norm(model, loss_fn, inputs, targets)[1],
        "gd_neg_sum": spectrum_sums(gd_ev).neg_sum, "gd_lambda_max": float(gd_ev[-1]),
        "gd_floor_drop": -float(floor(float(p["equilibration_time"]))),
        "num_params": sum(q.numel() for q in model.parameters()),
    }
    return Measurement(metrics=metrics, figure_data={"gd_losses": gd.losses})
