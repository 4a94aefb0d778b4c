"""Sagun et al. (2018), App. B, Example 1 and Fig. 10: the logistic-regression Hessian.

Logistic regression f(w, x) = <w, x> with the log-loss: the second term of Eq. 4 vanishes
(hess f = 0), so H = (1/N) sum_i c_i x_i x_i^T with c_i = sigma'(<w, x_i>), and with c
constant "this case falls into the classical Marchenko-Pastur law"; with two Gaussian blobs
the spectrum "has outlier eigenvalues" (Fig. 10, right).

Setup (ours where the paper is silent): M = round(``ratio`` N) input dimensions; one blob
x ~ N(0, I_M) with labels drawn 0/1 at random, or two blobs x = +-s u + N(0, I_M) (u a random
unit vector, s = ``separation``, N/2 samples each, label = blob); the Hessian (``hb.hessian``,
dense float64, every eigenvalue) at w = 0, the start of GD, where c_i = 1/4 for every sample
(Example 1's premise exactly). Population covariance: I (one blob) or I + s^2 u u^T, so the
law is MP with y = M/N, sigma^2 = 1/4, and the two-blob spike ell = 1 + s^2 predicts an
outlier at sigma^2 ell (1 + y / (ell - 1)) (App. B, Theorem 1) when ell > 1 + sqrt(y).

Metrics: ``ks_bulk`` (KS distance of all eigenvalues but the largest to the MP law, no
fitted parameter), ``top_over_edge`` and ``second_over_edge`` (lambda_1, lambda_2 over the
MP edge b), ``top_over_bbp`` (lambda_1 over Theorem 1's prediction; the edge below the
threshold), ``hessian_closed_form_err`` (premise: ||H - (1/4N) X^T X||_F / ||H||_F).

Reference: Sagun, Evci, Guney, Dauphin, Bottou, "Empirical Analysis of the Hessian of
Over-Parametrized Neural Networks", 2018, App. B (Theorem 1, Example 1, Fig. 10).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

import hessbench as hb
from hessbench.experiments.registry import Measurement, experiment
from hessbench.experiments.sagun_gauss_newton import logistic_loss
from hessbench.marchenko_pastur import bbp_outlier, ks_distance, mp_density, mp_edges
from hessbench.utils import seeded_generator

DEFAULTS: dict[str, Any] = {"num_samples": 800, "ratio": 0.25, "blobs": 2, "separation": 3.0}

METRICS = ["ks_bulk", "top_over_edge", "second_over_edge", "top_over_bbp", "spike",
           "bbp_threshold", "num_params", "num_samples", "hessian_closed_form_err"]

SIGMA2 = 0.25  # sigma'(0): the per-sample weight c_i at w = 0


def blobs_data(n: int, m: int, blobs: int, separation: float, seed: int
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """(X, y), float64: one blob N(0, I_m) with random 0/1 labels, or two blobs +-s u + N(0, I)
    (n/2 each, label = blob, shuffled)."""
    gen = seeded_generator(seed)
    x = torch.randn(n, m, generator=gen, dtype=torch.float64)
    if blobs == 1:
        return x, torch.randint(0, 2, (n,), generator=gen)
    u = torch.randn(m, generator=gen, dtype=torch.float64)
    y = torch.arange(n) % 2
    y = y[torch.randperm(n, generator=gen)]
    return x + separation * (2.0 * y - 1.0).unsqueeze(1) * (u / u.norm()), y


def _check(p: dict[str, Any]) -> None:
    if p["blobs"] not in (1, 2):
        raise ValueError(f"sagun_logistic_bulk: blobs must be 1 or 2, got {p['blobs']!r}")
    if p["num_samples"] < 4 or p["num_samples"] % 2:
        raise ValueError("sagun_logistic_bulk: num_samples must be even and >= 4, got "
                         f"{p['num_samples']}")
    if not p["ratio"] > 0 or round(p["ratio"] * p["num_samples"]) < 2:
        raise ValueError("sagun_logistic_bulk: ratio must be > 0 with ratio * num_samples >= 2, "
                         f"got {p['ratio']}")
    if p["separation"] < 0:
        raise ValueError(f"sagun_logistic_bulk: separation must be >= 0, got {p['separation']}")


def plot_logistic_bulk(records: list[dict[str, Any]]) -> Any:
    """Sagun et al. Fig. 10: histogram of the Hessian's eigenvalues (one panel per ratio,
    first seed; zeros of the y > 1 atom left out) with the MP density overlaid and the
    largest eigenvalue and Theorem 1's prediction marked."""
    from matplotlib.figure import Figure

    firsts = {}
    for rec in records:
        firsts.setdefault(rec["params"]["ratio"], rec)
    fig = Figure(figsize=(3.6 * max(len(firsts), 1), 3.2), layout="constrained")
    axes = fig.subplots(1, max(len(firsts), 1), squeeze=False)[0]
    for ax, (ratio, rec) in zip(axes, sorted(firsts.items())):
        ev = np.asarray(rec["figure_data"]["eigenvalues"])
        ev = ev[ev > 1e-9 * ev.max()]
        a, b = mp_edges(ratio, SIGMA2)
        mass = min(1.0, 1.0 / ratio)
        heights = ax.hist(ev, bins=60, density=True, color="0.7", label="Hessian")[0]
        grid = np.linspace(a + 0.005 * (b - a), b, 400)  # the y = 1 density diverges at 0
        ax.plot(grid, mp_density(grid, ratio, SIGMA2) / mass, "k-", lw=1, label="MP law")
        ax.set_ylim(0, 1.3 * heights.max())
        ax.axvline(ev.max(), color="tab:red", ls="--", lw=0.8, label="lambda_1")
        ax.axvline(rec["figure_data"]["bbp"], color="tab:blue", ls=":", lw=0.8,
                   label="Thm 1 prediction")
        ax.set_xlabel("eigenvalue")
        ax.set_title(f"{rec['params']['blobs']} blob(s), M/N = {ratio}, seed {rec['seed']}",
                     fontsize=8)
    axes[0].set_ylabel("density (nonzero eigenvalues)")
    axes[-1].legend(fontsize=7)
    fig.suptitle("Sagun et al. Fig. 10: logistic-regression Hessian spectrum", fontsize=9)
    return fig


@experiment("sagun_logistic_bulk", figure=plot_logistic_bulk, metrics=METRICS,
            defaults=DEFAULTS)
def sagun_logistic_bulk(p: dict[str, Any], seed: int, device: torch.device) -> Measurement:
    """The dense logistic-regression Hessian at w = 0 against the MP law and Theorem 1."""
    _check(p)
    n = int(p["num_samples"])
    m = int(round(p["ratio"] * n))
    y_ratio = m / n
    x, y = blobs_data(n, m, int(p["blobs"]), float(p["separation"]), seed)
    x, y = x.to(device), y.to(device)
    model = nn.Linear(m, 1, bias=False).to(device=device, dtype=torch.float64)
    nn.init.zeros_(model.weight)
    H = hb.hessian(model, logistic_loss, (x, y), dtype=torch.float64).dense()
    closed = SIGMA2 * x.T @ x / n
    ev = hb.spectrum(H)[::-1]
    spike = 1.0 + (float(p["separation"]) ** 2 if p["blobs"] == 2 else 0.0)
    edge = mp_edges(y_ratio, SIGMA2)[1]
    bbp = bbp_outlier(spike, y_ratio, SIGMA2)
    metrics = {
        "ks_bulk": ks_distance(ev[1:], y_ratio, SIGMA2),
        "top_over_edge": ev[0] / edge, "second_over_edge": ev[1] / edge,
        "top_over_bbp": ev[0] / bbp, "spike": spike,
        "bbp_threshold": 1 + math.sqrt(y_ratio), "num_params": m, "num_samples": n,
        "hessian_closed_form_err": float(torch.linalg.norm(H - closed) / torch.linalg.norm(H)),
    }
    return Measurement(metrics=metrics, figure_data={"eigenvalues": ev.tolist(), "bbp": bbp})
