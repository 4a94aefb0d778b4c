"""Sagun et al. (2018), Sec. 3.2, Fig. 3: the top of the Hessian spectrum against width.

"We sample 1K examples from the MNIST dataset and fix them as the training set. Then we
form four different networks each of which has a different number of nodes in its
hidden layer (nhidden in {10, 30, 50, 70}). All four networks are trained with the same
step size and the same number of iterations and the exact Hessian is computed at the
end. [...] For the right edge of the spectrum [...] the shape of the plot remains
invariant as the number of parameters increase"; Sec. 3.4: "Adding more weights to the
system scale the small scale eigenvalues proportionally, the number of outliers remain
unchanged".

Setup (ours where the paper is silent): scikit-learn's 8x8 digits stand in for MNIST
(``hessbench.data.digits``, ``num_samples`` of them, standardised per feature, then
multiplied by ``input_scale``), a ReLU MLP 64 - h - 10 with softmax cross-entropy, plain
full-batch GD with the same ``lr`` and ``steps`` for every arm, one data set and one
initialisation seed per run. An *arm* is a pair (h, input_scale) of
``widths x input_scales``; the claim varies the width at input_scale 1, the negative
control the data (input scale) at a fixed width. At the end of each arm: the ``top_m``
largest eigenvalues of the float64 Hessian (Lanczos or dense, as in
:mod:`hessbench.experiments.sagun_outliers`), and across arms, per rank i,

    r_i = (max_a lambda_i(a) - min_a lambda_i(a)) / max_a |lambda_i(a)|   (in [0, 2])

``outlier_change`` = mean of r_i over the k = 10 outlier ranks (one per class, Sec. 3.1),
``bulk_change`` = mean over ranks k + 1 .. top_m (the rest of the paper's top-120 window),
``change_ratio`` = outlier_change / bulk_change. Premises: every arm's train accuracy and
loss, ``eos_ratio`` = lr lambda_max / 2 (near 1, GD's edge of stability would pin
lambda_max whatever the width); the outlier counts (:mod:`hessbench.outliers`) per arm are reported.

Reference: L. Sagun, U. Evci, V. U. Guney, Y. Dauphin, L. Bottou, "Empirical Analysis of
the Hessian of Over-Parametrized Neural Networks", 2018, Sec. 3.2 (Fig. 3) and 3.4.
"""
from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import torch
from torch import nn

import hessbench as hb
from hessbench.data import digits
from hessbench.experiments.registry import Measurement, experiment
from hessbench.experiments.sagun_outliers import _seeds, top_eigenvalues
from hessbench.models import mlp
from hessbench.outliers import count_all
from hessbench.training import accuracy, train

NUM_CLASSES = 10  # digits

DEFAULTS: dict[str, Any] = {
    "num_samples": 1000, "widths": [10, 30, 50, 70], "input_scales": [1.0],
    "activation": "relu", "lr": 0.1, "steps": 2000, "spectrum": "lanczos", "top_m": 120,
    "eig_tol": 1e-8,
}

METRICS = ["outlier_change", "bulk_change", "change_ratio", "rank_change", "top_eigenvalues",
           "lambda_max", "eos_ratio", "n_outliers_gap", "n_outliers_ratio", "train_accuracy",
           "min_train_accuracy", "final_loss", "num_params", "arm_widths", "arm_input_scales"]


def rank_change(spectra: np.ndarray) -> np.ndarray:
    """Per rank, (max - min) / max |.| over the arms (rows) of descending spectra; 0 where
    every arm has lambda_i = 0."""
    spectra = np.asarray(spectra, dtype=np.float64)
    scale = np.abs(spectra).max(axis=0)
    spread = spectra.max(axis=0) - spectra.min(axis=0)
    return np.divide(spread, scale, out=np.zeros_like(spread), where=scale > 0)


def change_stats(spectra: np.ndarray, k: int) -> tuple[float, float, np.ndarray]:
    """(outlier_change, bulk_change, r): mean r_i over ranks 1..k and k+1..m."""
    r = rank_change(spectra)
    if not 1 <= k < r.size:
        raise ValueError(f"need more than k = {k} ranks, got {r.size}")
    return float(r[:k].mean()), float(r[k:].mean()), r


def _check(p: dict[str, Any]) -> None:
    arms = len(p["widths"]) * len(p["input_scales"])
    if arms < 2:
        raise ValueError(f"sagun_width: need at least 2 arms (widths x input_scales), got "
                         f"{p['widths']} x {p['input_scales']}")
    if min(p["widths"]) < 1 or min(p["input_scales"]) <= 0:
        raise ValueError("sagun_width: widths must be >= 1 and input_scales > 0, got "
                         f"{p['widths']}, {p['input_scales']}")
    if p["top_m"] < 2 * NUM_CLASSES + 2:
        raise ValueError(f"sagun_width: top_m = {p['top_m']} leaves no bulk; use top_m >= "
                         f"{2 * NUM_CLASSES + 2}")
    if p["spectrum"] not in ("exact", "lanczos"):
        raise ValueError(f"sagun_width: spectrum must be 'exact' or 'lanczos', got "
                         f"{p['spectrum']!r}")


def plot_width(records: list[dict[str, Any]]) -> Any:
    """Sagun et al. Fig. 3: the top eigenvalues of each arm in increasing order (rank on x,
    value on y), one panel per seed; the dotted line marks the k outliers."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3.4 * len(records), 3.2), layout="constrained")
    axes = fig.subplots(1, len(records), squeeze=False)[0]
    for ax, rec in zip(axes, records):
        fd, m = rec["figure_data"], rec["metrics"]
        for w, s, ev in zip(fd["widths"], fd["input_scales"], fd["eigenvalues"]):
            ev = np.asarray(ev)[::-1]  # increasing, as the paper plots
            ax.plot(np.arange(1, ev.size + 1), ev, lw=0.9, label=f"h={w}, scale={s:g}")
        ax.axvline(len(ev) - NUM_CLASSES + 0.5, color="k", ls=":", lw=0.8)
        ax.set_yscale("log", nonpositive="mask")  # the bulk's negatives are left out
        ax.set_title(f"seed {rec['seed']}: outlier / bulk change "
                     f"{m['outlier_change']:.2f} / {m['bulk_change']:.2f}", fontsize=8)
        ax.set_xlabel("order of largest eigenvalues")
    axes[0].set_ylabel("Hessian eigenvalue")
    axes[-1].legend(fontsize=6, loc="upper left")
    fig.suptitle("Sagun et al. Fig. 3: right edge of the Hessian spectrum (digits MLP)",
                 fontsize=9)
    return fig


@experiment("sagun_width", figure=plot_width, metrics=METRICS, defaults=DEFAULTS)
def sagun_width(p: dict[str, Any], seed: int, device: torch.device) -> Measurement:
    """Train one 64-h-10 net per arm on the same digits, compare the top spectra."""
    _check(p)
    data_seed, init_seed, _ = _seeds(seed)
    x0, y = digits(int(p["num_samples"]), seed=data_seed, device=device)
    loss_fn = nn.functional.cross_entropy
    arms = list(itertools.product(p["widths"], p["input_scales"]))
    spectra, acc, loss, nparams, gap, ratio = [], [], [], [], [], []
    for width, scale in arms:
        x = x0 * float(scale)
        model = mlp(x.shape[1], [int(width)], NUM_CLASSES, activation=p["activation"],
                    seed=init_seed, device=device)
        result = train(model, loss_fn, x, y, lr=float(p["lr"]), steps=int(p["steps"]),
                       eval_every=max(int(p["steps"]), 1))
        with torch.no_grad():
            acc.append(accuracy(model(x), y))
        op = hb.hessian(model, loss_fn, (x, y), dtype=torch.float64)
        window, _ = top_eigenvalues(op, int(p["top_m"]), p["spectrum"], float(p["eig_tol"]),
                                    seed)
        counts = count_all(window, methods=("gap", "ratio"))
        spectra.append(window)
        loss.append(result.final_loss)
        nparams.append(op.num_params)
        gap.append(counts["gap"].count)
        ratio.append(counts["ratio"].count)
    spectra = np.stack(spectra)
    outlier, bulk, r = change_stats(spectra, NUM_CLASSES)
    metrics = {
        "outlier_change": outlier, "bulk_change": bulk,
        "change_ratio": outlier / bulk if bulk > 0 else float("inf"),
        "rank_change": r.tolist(), "top_eigenvalues": spectra[:, :NUM_CLASSES].tolist(),
        "lambda_max": spectra[:, 0].tolist(),
        "eos_ratio": (spectra[:, 0] * float(p["lr"]) / 2).tolist(), "n_outliers_gap": gap,
        "n_outliers_ratio": ratio, "train_accuracy": acc, "min_train_accuracy": min(acc),
        "final_loss": loss, "num_params": nparams,
        "arm_widths": [int(w) for w, _ in arms],
        "arm_input_scales": [float(s) for _, s in arms],
    }
    return Measurement(metrics=metrics, figure_data={
        "widths": metrics["arm_widths"], "input_scales": metrics["arm_input_scales"],
        "eigenvalues": spectra.tolist()})
