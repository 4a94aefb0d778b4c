"""Sagun et al. (2018), §3.1, Fig. 2, Appendix A Table 1: Hessian outliers vs classes.

k Gaussian clusters in R^100 (normalised globally, input covariance scale
``input_cov``), a fully connected 100-30-30-k net with softmax cross-entropy,
trained by GD or SGD until the training loss stops improving (or the step budget
ends); then the top of the Hessian spectrum of the training loss, in float64, and
the number of outliers above the bulk counted three ways on the top-``top_m``
window (:mod:`hessbench.outliers`: largest gap, largest ratio, log-elbow).

``spectrum = "exact"`` takes every eigenvalue of the dense Hessian
(``hb.spectrum``); ``"lanczos"`` takes only the ``top_m`` largest by
``hb.eigsh`` (the counters never look below the window, so the counts are the
same up to the solver tolerance; it raises if the solver does not converge).

References
----------
L. Sagun, U. Evci, V. U. Guney, Y. Dauphin and L. Bottou, "Empirical Analysis of the
Hessian of Over-Parametrized Neural Networks", 2018 (ICLR 2018 submission): §3.1, Fig. 2,
Appendix A, Table 1.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

import hessbench as hb
from hessbench.data import gaussian_clusters
from hessbench.experiments.registry import Measurement, experiment
from hessbench.models import mlp
from hessbench.outliers import METHODS, count_all
from hessbench.training import accuracy, train

DEFAULTS: dict[str, Any] = {
    "k": 10, "optimizer": "sgd", "activation": "relu", "samples_per_class": 100, "dim": 100,
    "hidden": [30, 30], "input_cov": 1.0, "lr": 0.1, "batch_size": 32, "max_steps": 2000,
    "eval_every": 100, "plateau_rtol": 0.01, "patience": 5, "spectrum": "lanczos",
    "top_m": 30, "eig_tol": 1e-8,
}

METRICS = [f"n_outliers_{m}" for m in METHODS] + [
    "top_eigenvalues", "final_loss", "train_accuracy", "train_steps", "stopped_on_plateau",
    "num_params", "eig_matvecs", "num_samples"]


def _seeds(seed: int) -> tuple[int, int, int]:
    """Independent data, initialisation and minibatch seeds derived from ``seed``."""
    data, init, batches = np.random.SeedSequence(seed).generate_state(3)
    return int(data), int(init), int(batches)


def _check(p: dict[str, Any]) -> None:
    if p["optimizer"] not in ("gd", "sgd"):
        raise ValueError(f"sagun_outliers: optimizer must be 'gd' or 'sgd', "
                         f"got {p['optimizer']!r}")
    if p["spectrum"] not in ("exact", "lanczos"):
        raise ValueError(f"sagun_outliers: spectrum must be 'exact' or 'lanczos', "
                         f"got {p['spectrum']!r}")
    if p["input_cov"] <= 0:
        raise ValueError(f"sagun_outliers: input_cov must be > 0, got {p['input_cov']}")
    if p["top_m"] < 2 * p["k"] + 2:
        raise ValueError(f"sagun_outliers: top_m = {p['top_m']} leaves no room for k + 1 "
                         f"outliers and a bulk at k = {p['k']}; use top_m >= 2k + 2")


def top_eigenvalues(op: hb.CurvatureOperator, top_m: int, method: str, tol: float,
                    seed: int) -> tuple[np.ndarray, int]:
    """The ``top_m`` largest eigenvalues (descending) and the matvecs spent on them."""
    if method == "exact":
        return hb.spectrum(op)[::-1][:top_m].copy(), op.num_params
    r = hb.eigsh(op, k=top_m, which="LA", tol=tol, seed=seed, return_vectors=False,
                 on_unconverged="raise")
    return r.values, r.matvecs


MARKERS = {"gap": ("v", "tab:red"), "ratio": ("o", "tab:green"), "elbow": ("s", "tab:purple")}


def tested_counters(records: list[dict[str, Any]]) -> list[str]:
    """The counting methods whose count the claim tests (``n_outliers_<method>`` among the
    records' ``tested_metrics``), in :data:`METHODS` order."""
    tested = {m for rec in records for m in rec.get("tested_metrics", ())}
    return [m for m in METHODS if f"n_outliers_{m}" in tested]


def plot_outliers(records: list[dict[str, Any]]) -> Any:
    """Sagun et al. Fig. 2: top 2k + 10 ordered eigenvalues per k (rank on x, value on y;
    more when a count reaches beyond them),
    one line per (optimizer, seed) (solid SGD, dashed GD), each method's count marked at
    the last rank it counts as an outlier; the dotted line separates ranks k and k + 1.
    The count the claim tests (:func:`tested_counters`) is drawn filled and larger and
    named in the legend and the title ("tested"); the others are hollow ("reported")."""
    from matplotlib.figure import Figure

    tested = tested_counters(records)
    ks = sorted({rec["figure_data"]["k"] for rec in records})
    fig = Figure(figsize=(3.4 * len(ks), 3.2), layout="constrained")
    axes = fig.subplots(1, len(ks), squeeze=False)[0]
    for ax, k in zip(axes, ks):
        for rec in (r for r in records if r["figure_data"]["k"] == k):
            fd, prm = rec["figure_data"], rec["params"]
            # the top 2k + 10, or further when a counter reached beyond them
            shown = max(2 * k + 10, max(fd["counts"].values()) + 1)
            values = np.asarray(fd["eigenvalues"][:shown])
            ranks = np.arange(1, values.size + 1)
            style = "-" if prm.get("optimizer", "sgd") == "sgd" else "--"
            ax.plot(ranks, values, style, lw=0.8, color="0.4", alpha=0.8)
            for method, count in fd["counts"].items():
                marker, color = MARKERS[method]
                ax.plot(count, values[count - 1], marker, color=color,
                        **_counter_style(method in tested))
        ax.axvline(k + 0.5, color="k", ls=":", lw=0.8)
        ax.set_yscale("log", nonpositive="mask")
        ax.set_title(f"k = {k}")
        ax.set_xlabel("rank")
    axes[0].set_ylabel("Hessian eigenvalue")
    handles = [axes[0].plot([], [], m, color=c, **_counter_style(name in tested),
                            label=f"count ({name}): {'TESTED' if name in tested else 'reported'}"
                            )[0]
               for name, (m, c) in MARKERS.items()]
    handles += [axes[0].plot([], [], "-", color="0.4", label="SGD")[0],
                axes[0].plot([], [], "--", color="0.4", label="GD")[0],
                axes[0].plot([], [], ":", color="k", lw=0.8, label="k | k + 1")[0]]
    axes[-1].legend(handles=handles, fontsize=7, loc="upper right")
    activation = records[0]["params"].get("activation", "relu") if records else "relu"
    counted = (f"; tested: the {' and '.join(tested)} count" if tested
               else "; no count tested")
    fig.suptitle(f"Sagun et al. Fig. 2: ordered top Hessian eigenvalues ({activation})"
                 f"{counted}", fontsize=9)
    return fig


def _counter_style(tested: bool) -> dict[str, Any]:
    """A tested count filled and larger, a reported one hollow."""
    return {"ms": 8, "mew": 1.5} if tested else {"ms": 5, "mfc": "none"}


@experiment("sagun_outliers", figure=plot_outliers, metrics=METRICS, defaults=DEFAULTS)
def sagun_outliers(p: dict[str, Any], seed: int, device: torch.device) -> Measurement:
    """Train the 100-30-30-k net, count Hessian outliers by gap, ratio and elbow."""
    _check(p)
    k = int(p["k"])
    data_seed, init_seed, batch_seed = _seeds(seed)
    x, y = gaussian_clusters(k, int(p["samples_per_class"]), int(p["dim"]),
                             cluster_std=math.sqrt(p["input_cov"]), seed=data_seed,
                             device=device)
    model = mlp(int(p["dim"]), list(p["hidden"]), k, activation=p["activation"],
                seed=init_seed, device=device)
    loss_fn = nn.functional.cross_entropy
    result = train(model, loss_fn, x, y, lr=float(p["lr"]), steps=int(p["max_steps"]),
                   batch_size=int(p["batch_size"]) if p["optimizer"] == "sgd" else None,
                   seed=batch_seed, eval_every=int(p["eval_every"]),
                   plateau_rtol=float(p["plateau_rtol"]), patience=int(p["patience"]))
    with torch.no_grad():
        train_accuracy = accuracy(model(x), y)

    op = hb.hessian(model, loss_fn, (x, y), dtype=torch.float64)
    window, matvecs = top_eigenvalues(op, int(p["top_m"]), p["spectrum"], float(p["eig_tol"]),
                                      seed)
    counts = {m: c.count for m, c in count_all(window).items()}
    shown = window[:2 * k + 10].tolist()  # the paper's Fig. 2 shows the top 2k + 10
    metrics = {f"n_outliers_{m}": counts[m] for m in METHODS}
    metrics.update(top_eigenvalues=shown, final_loss=result.final_loss,
                   train_accuracy=train_accuracy, train_steps=result.steps,
                   stopped_on_plateau=result.stopped == "plateau", num_params=op.num_params,
                   eig_matvecs=matvecs, num_samples=len(y))
    return Measurement(metrics=metrics, figure_data={"k": k, "eigenvalues": window.tolist(),
                                                     "counts": counts})
