"""Wei & Schwab (2019), §4.1, Fig. 2a, Appendix A.3: negative curvature tracks the loss.

Prediction. Near a degenerate valley of minima SGD does not sit on the valley but
fluctuates around it; the Hessian at such a point has negative eigenvalues in the
(nearly) degenerate directions, and their sum is proportional to the training loss
at equilibrium: sum_{lambda_i < 0} lambda_i = w L + b with w < 0 and b ~ 0 (the paper
fits w = -40.07, b ~ -1e-5 on 500 MNIST samples).

Protocol (one call = one seed):

1. ``num_samples`` digits (8x8, standardised), a ReLU MLP 64 -> hidden -> 10, float64,
   label-smoothed cross-entropy CE_eps (``label_smoothing`` = eps; smoothed target
   q = (1 - eps) onehot + eps / K).
2. Full-batch GD at ``gd_lr`` for ``gd_steps`` -> the minimum theta_0 (paper: lr 0.1 for
   10k epochs). On digits GD converges sublinearly; at lr 0.1 the loss still falls by
   ~1e-4 per 25 units of SGD time after 10k steps, as much as the SGD heating to be
   measured, so the default takes lr 1.0 (still stable: lr * lambda_max < 2 with
   lambda_max = ``gd_lambda_max``, 1.77 at the smoke scale, seed 0).
3. For each pair (batch_sizes[i], learning_rates[i]): SGD from theta_0 for
   ``ceil(equilibration_time / lr)`` steps, i.e. the same SGD time lr * steps for every
   pair (a mode of curvature lambda relaxes in time ~ 1 / lambda whatever lr is). The
   full-batch loss is evaluated about ``num_evals`` times, evenly spaced; the equilibrium
   loss is the mean of the last ``average_fraction`` of those evaluations, and
   ``equilibration_drift`` is the mean of that window's first half minus its second half.
4. The exact Hessian spectrum (dense, float64) of CE_eps at the end point of each pair.

The training loss of the fit (``train_loss``) is measured from the valley floor, as in
the paper's analysis where the loss vanishes on the valley: equilibrium loss minus the
loss at theta_0. ``train_loss_kl`` is measured from CE_eps's absolute floor H(q) (= the
mean KL(q || softmax f)), which a net too small to interpolate the smoothed labels never
reaches; ``train_loss_ce`` is the raw CE_eps.

Eigenvalues within the round-off of a float64 eigensolver, |lambda| <= n eps_64 max|lambda|,
count as zero (see :func:`spectrum_sums`).
"""
from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

import hessbench as hb
from hessbench.data import digits
from hessbench.experiments.registry import Measurement, experiment, with_defaults
from hessbench.models import mlp
from hessbench.training import full_loss, train

NUM_CLASSES = 10
IN_DIM = 64

DEFAULTS: dict[str, Any] = {
    "num_samples": 500,
    "hidden": 20,
    "label_smoothing": 0.1,
    "gd_lr": 1.0,
    "gd_steps": 10_000,
    "batch_sizes": [5, 6, 7, 8, 10, 13, 17, 5],
    "learning_rates": [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.03],
    "equilibration_time": 100.0,
    "num_evals": 100,
    "average_fraction": 0.5,
}

METRICS = ["train_loss", "train_loss_kl", "train_loss_ce", "end_loss", "equilibration_drift", "neg_sum",
           "pos_sum", "neg_count", "neg_to_pos_mass", "lambda_min", "lambda_max",
           "batch_size", "learning_rate", "noise_scale", "sgd_steps", "fit_slope",
           "fit_intercept", "fit_r2", "gd_loss_kl", "gd_grad_norm", "gd_neg_sum",
           "gd_lambda_max", "num_params"]


def smoothed_target_entropy(num_classes: int, label_smoothing: float) -> float:
    """H(q) for q = (1 - eps) onehot + eps / K: the minimum of the label-smoothed CE.

    H(q) = -(1 - eps + eps/K) log(1 - eps + eps/K) - (K - 1) (eps/K) log(eps/K), with
    0 log 0 = 0 (so H = 0 at eps = 0).
    """
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    on = 1.0 - label_smoothing + label_smoothing / num_classes
    off = label_smoothing / num_classes
    return -(on * math.log(on) + ((num_classes - 1) * off * math.log(off) if off > 0 else 0.0))


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


def exact_spectrum(model: nn.Module, loss_fn, inputs: torch.Tensor,
                   targets: torch.Tensor) -> np.ndarray:
    """All eigenvalues (ascending, float64) of the full-batch loss Hessian."""
    return hb.spectrum(hb.hessian(model, loss_fn, (inputs, targets), dtype=torch.float64))


def _check_params(params: dict[str, Any]) -> dict[str, Any]:
    p = with_defaults("wei_schwab_negative", DEFAULTS, params)
    bs, lrs = list(p["batch_sizes"]), list(p["learning_rates"])
    if len(bs) != len(lrs):
        raise ValueError(f"batch_sizes ({len(bs)}) and learning_rates ({len(lrs)}) must pair "
                         "up one to one: give lists of the same length")
    if len(bs) < 3:
        raise ValueError(f"a linear fit needs at least 3 (batch size, lr) pairs, got {len(bs)}")
    if not 0.0 < p["average_fraction"] <= 1.0:
        raise ValueError(f"average_fraction must be in (0, 1], got {p['average_fraction']}")
    if int(p["num_evals"]) < 2:
        raise ValueError(f"num_evals must be >= 2, got {p['num_evals']}")
    return p


def _grad_norm(model: nn.Module, loss_fn, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    params = [q for q in model.parameters() if q.requires_grad]
    grads = torch.autograd.grad(loss_fn(model(inputs), targets), params)
    return float(torch.sqrt(sum((g * g).sum() for g in grads)))


def _pair_seed(seed: int, index: int) -> int:
    """An independent minibatch-order seed for pair ``index`` of run ``seed``."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def _fit(x: Sequence[float], y: Sequence[float]) -> tuple[float, float, float]:
    """Least-squares y = w x + b; returns (w, b, R^2)."""
    xa, ya = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    w, b = np.polyfit(xa, ya, 1)
    ss_res = float(np.sum((ya - (w * xa + b)) ** 2))
    ss_tot = float(np.sum((ya - ya.mean()) ** 2))
    return float(w), float(b), (1.0 if ss_tot == 0.0 else 1.0 - ss_res / ss_tot)


def plot_negative_vs_loss(records: list[dict[str, Any]]) -> Any:
    """Fig. 2a: sum of negative eigenvalues against training loss, with the fitted line."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 4))
    ax = fig.add_subplot()
    for rec in records:
        m = rec["metrics"]
        x, y = np.asarray(m["train_loss"]), np.asarray(m["neg_sum"])
        points = ax.scatter(x, y, s=18, label=f"seed {rec['seed']}: SGD equilibria")
        colour = points.get_facecolor()[0]
        ax.scatter([0.0], [m["gd_neg_sum"]], s=30, marker="x", color=colour,
                   label=f"seed {rec['seed']}: GD minimum (not fitted)")
        grid = np.linspace(0.0, float(x.max()), 50)
        w, b = m["fit_slope"], m["fit_intercept"]
        ax.plot(grid, w * grid + b, lw=1, color=colour,
                label=f"y = {w:.4g} x {'+' if b >= 0 else '-'} {abs(b):.2g} "
                      f"(R$^2$ = {m['fit_r2']:.3f})")
    ax.axhline(0.0, color="0.7", lw=0.5)
    ax.set_xlabel("training loss above the GD minimum")
    ax.set_ylabel("sum of negative eigenvalues")
    ax.set_title("Wei & Schwab Fig. 2a: negative curvature vs loss")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


@experiment("wei_schwab_negative", figure=plot_negative_vs_loss, metrics=METRICS)
def wei_schwab_negative(params: dict[str, Any], seed: int, device: torch.device) -> Measurement:
    """GD to a minimum, SGD to equilibrium per (batch size, lr) pair, exact spectra there."""
    p = _check_params(params)
    device = torch.device(device)
    dtype = torch.float64
    inputs, targets = digits(int(p["num_samples"]), seed=seed, dtype=dtype, device=device)
    model = mlp(IN_DIM, [int(p["hidden"])], NUM_CLASSES, seed=seed, dtype=dtype, device=device)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=float(p["label_smoothing"]))
    floor = smoothed_target_entropy(NUM_CLASSES, float(p["label_smoothing"]))

    gd = train(model, loss_fn, inputs, targets, lr=float(p["gd_lr"]), steps=int(p["gd_steps"]),
               eval_every=max(1, int(p["gd_steps"]) // 10))
    gd_ev = exact_spectrum(model, loss_fn, inputs, targets)
    gd_sums = spectrum_sums(gd_ev)

    rows: dict[str, list] = {k: [] for k in ("train_loss", "train_loss_kl", "train_loss_ce",
                                              "end_loss",
                                              "equilibration_drift", "neg_sum", "pos_sum",
                                              "neg_count", "neg_to_pos_mass", "lambda_min",
                                              "lambda_max", "sgd_steps")}
    for i, (bs, lr) in enumerate(zip(p["batch_sizes"], p["learning_rates"])):
        sgd_model = copy.deepcopy(model)
        steps = equilibration_steps(float(p["equilibration_time"]), float(lr))
        run = train(sgd_model, loss_fn, inputs, targets, lr=float(lr), steps=steps,
                    batch_size=int(bs), seed=_pair_seed(seed, i),
                    eval_every=max(1, steps // int(p["num_evals"])))
        evals = run.losses[1:]  # losses[0] is the starting minimum
        frac = float(p["average_fraction"])
        ev = exact_spectrum(sgd_model, loss_fn, inputs, targets)
        sums = spectrum_sums(ev)
        loss_eq = window_mean(evals, frac)
        rows["train_loss"].append(loss_eq - gd.final_loss)
        rows["train_loss_kl"].append(loss_eq - floor)
        rows["train_loss_ce"].append(loss_eq)
        rows["end_loss"].append(full_loss(sgd_model, loss_fn, inputs, targets) - gd.final_loss)
        rows["equilibration_drift"].append(window_drift(evals, frac))
        rows["neg_sum"].append(sums.neg_sum)
        rows["pos_sum"].append(sums.pos_sum)
        rows["neg_count"].append(sums.neg_count)
        rows["neg_to_pos_mass"].append(abs(sums.neg_sum) / sums.pos_sum)
        rows["lambda_min"].append(float(ev[0]))
        rows["lambda_max"].append(float(ev[-1]))
        rows["sgd_steps"].append(steps)

    slope, intercept, r2 = _fit(rows["train_loss"], rows["neg_sum"])
    bs_list = [int(b) for b in p["batch_sizes"]]
    lr_list = [float(a) for a in p["learning_rates"]]
    metrics = {
        **rows,
        "batch_size": bs_list, "learning_rate": lr_list,
        "noise_scale": [a / b for a, b in zip(lr_list, bs_list)],
        "fit_slope": slope, "fit_intercept": intercept, "fit_r2": r2,
        "gd_loss_kl": gd.final_loss - floor,
        "gd_grad_norm": _grad_norm(model, loss_fn, inputs, targets),
        "gd_neg_sum": gd_sums.neg_sum, "gd_lambda_max": float(gd_ev[-1]),
        "num_params": sum(q.numel() for q in model.parameters()),
    }
    return Measurement(metrics=metrics, figure_data={"gd_losses": gd.losses})
