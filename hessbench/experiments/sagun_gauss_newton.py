"""Sagun et al. (2018), Sec. 2.2, Eq. 4-5: the Hessian against its Gauss-Newton part.

For a real-valued model output f_i(w) and a loss l convex in f (Eq. 4),

    H = (1/N) sum_i l''(f_i) grad f_i grad f_i^T  +  (1/N) sum_i l'(f_i) hess f_i
      =: G + R,

and G (Eq. 5) is a product of an M x N matrix with its transpose, so it has at least
M - N trivial (zero) eigenvalues. The paper drops R "at a point close to a local minimum".

Setup (ours where the paper is silent): two Gaussian clusters (``gaussian_clusters``), a
ReLU MLP ``dim - hidden - 1`` with a single logit and the logistic loss (binary
cross-entropy with logits: real-valued f, convex l, the paper's Sec. 2.2 setting), trained
by full-batch GD (as in Fig. 1) for ``steps`` steps (``steps = 0``: the random initial
point). Then the dense float64 H and G (``hb.hessian``, ``hb.ggn``), all their
eigenvalues, and:

* ``rank_fraction`` = rank(A) / N, rank = #{|lambda| > ``rank_rtol`` max |lambda|}, of
  A = G (``rank_of = "ggn"``) or A = H (``"hessian"``, the control); the paper's bound
  "at least M - N trivial eigenvalues" of G is ``rank_fraction <= 1``;
* ``residual_rel`` = ||H - G||_2 / ||H||_2 (spectral norms), and the same in Frobenius
  norm, and |lambda_1(H) - lambda_1(G)| / lambda_1(H);
* premises: final loss, train accuracy, mean |l'(f_i)| (the weight of R).

Reference: L. Sagun, U. Evci, V. U. Guney, Y. Dauphin, L. Bottou, "Empirical Analysis of
the Hessian of Over-Parametrized Neural Networks", 2018, Sec. 2.2 (Eq. 4-5), Fig. 1.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

import hessbench as hb
from hessbench.data import gaussian_clusters
from hessbench.experiments.registry import Measurement, experiment
from hessbench.experiments.sagun_outliers import _seeds
from hessbench.models import mlp
from hessbench.training import train

DEFAULTS: dict[str, Any] = {
    "samples_per_class": 50, "dim": 20, "hidden": [20, 20], "activation": "relu",
    "input_cov": 1.0, "lr": 0.1, "steps": 2000, "rank_rtol": 1e-9, "rank_of": "ggn",
}

METRICS = ["rank_fraction", "rank", "trivial", "trivial_bound", "num_params",
           "num_samples", "residual_rel", "residual_rel_fro", "top_rel_diff",
           "hessian_trivial_rtol3", "final_loss", "train_accuracy", "mean_abs_dloss"]


def logistic_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy of one logit per sample: l(f, y) = log(1 + e^f) - y f."""
    return nn.functional.binary_cross_entropy_with_logits(out.squeeze(-1), y.to(out.dtype))


def rank(eigenvalues: np.ndarray, rtol: float) -> int:
    """#{i : |lambda_i| > rtol * max_j |lambda_j|} (0 for the zero matrix)."""
    ev = np.abs(np.asarray(eigenvalues, dtype=np.float64))
    top = ev.max(initial=0.0)
    return int((ev > rtol * top).sum()) if top > 0 else 0


def residual_norms(H: torch.Tensor, G: torch.Tensor) -> tuple[float, float]:
    """(||H - G||_2 / ||H||_2, ||H - G||_F / ||H||_F) for symmetric dense matrices."""
    spec = torch.linalg.matrix_norm
    R = H - G
    return (float(spec(R, ord=2) / spec(H, ord=2)), float(spec(R) / spec(H)))


def _check(p: dict[str, Any]) -> None:
    if p["samples_per_class"] < 1 or p["dim"] < 1 or not p["hidden"]:
        raise ValueError("sagun_gauss_newton: samples_per_class and dim must be >= 1 and "
                         f"hidden non-empty, got {p['samples_per_class']}, {p['dim']}, "
                         f"{p['hidden']}")
    if p["steps"] < 0 or p["lr"] <= 0 or p["input_cov"] <= 0:
        raise ValueError("sagun_gauss_newton: steps must be >= 0, lr and input_cov > 0, got "
                         f"{p['steps']}, {p['lr']}, {p['input_cov']}")
    if not 0 < p["rank_rtol"] < 1:
        raise ValueError(f"sagun_gauss_newton: rank_rtol must be in (0, 1), got {p['rank_rtol']}")
    if p["rank_of"] not in ("ggn", "hessian"):
        raise ValueError(f"sagun_gauss_newton: rank_of must be 'ggn' or 'hessian', got "
                         f"{p['rank_of']!r}")


def plot_gauss_newton(records: list[dict[str, Any]]) -> Any:
    """Sagun et al. Fig. 1 with Eq. 5: ordered eigenvalues of H and of its Gauss-Newton part
    G (rank on x, symlog value on y), one panel per record; the dotted line at rank N marks
    the paper's bound (G has at most N non-trivial eigenvalues)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3.6 * max(len(records), 1), 3.2), layout="constrained")
    axes = fig.subplots(1, max(len(records), 1), squeeze=False)[0]
    for ax, rec in zip(axes, records):
        fd, m = rec["figure_data"], rec["metrics"]
        for key, style, label in (("hessian", "-", "Hessian H"), ("ggn", "--", "Gauss-Newton G")):
            values = np.sort(np.asarray(fd[key]))[::-1]
            ax.plot(np.arange(1, values.size + 1), values, style, lw=1, label=label)
        ax.axvline(m["num_samples"], color="k", ls=":", lw=0.8, label="rank N")
        ax.set_yscale("symlog", linthresh=1e-6)
        ax.set_xlabel("rank of the eigenvalue")
        ax.set_title(f"steps {rec['params']['steps']}, N = {m['num_samples']}, seed "
                     f"{rec['seed']}\n||H-G||/||H|| = {m['residual_rel']:.3g}", fontsize=8)
    axes[0].set_ylabel("eigenvalue")
    axes[0].legend(fontsize=7)
    fig.suptitle("Sagun et al. Fig. 1 / Eq. 5: Hessian vs Gauss-Newton spectrum", fontsize=9)
    return fig


@experiment("sagun_gauss_newton", figure=plot_gauss_newton, metrics=METRICS, defaults=DEFAULTS)
def sagun_gauss_newton(p: dict[str, Any], seed: int, device: torch.device) -> Measurement:
    """Train the one-logit net by GD, compare the dense H with its Gauss-Newton part G."""
    _check(p)
    data_seed, init_seed, _ = _seeds(seed)
    x, y = gaussian_clusters(2, int(p["samples_per_class"]), int(p["dim"]),
                             cluster_std=float(np.sqrt(p["input_cov"])), seed=data_seed,
                             device=device)
    model = mlp(int(p["dim"]), list(p["hidden"]), 1, activation=p["activation"], seed=init_seed,
                device=device)
    result = train(model, logistic_loss, x, y, lr=float(p["lr"]), steps=int(p["steps"]))
    with torch.no_grad():
        out = model(x).squeeze(-1).double()
        accuracy = float(((out > 0).long() == y).double().mean())
        mean_abs_dloss = float((torch.sigmoid(out) - y.double()).abs().mean())  # |l'(f_i)|

    H = hb.hessian(model, logistic_loss, (x, y), dtype=torch.float64).dense()
    G = hb.ggn(model, logistic_loss, (x, y), dtype=torch.float64).dense()
    ev_h = hb.spectrum(H)
    ev_g = hb.spectrum(G)
    n, m = len(y), H.shape[0]
    a_rank = rank(ev_g if p["rank_of"] == "ggn" else ev_h, float(p["rank_rtol"]))
    res_spec, res_fro = residual_norms(H, G)
    metrics = {
        "rank_fraction": a_rank / n, "rank": a_rank, "trivial": m - a_rank,
        "trivial_bound": max(m - n, 0), "num_params": m, "num_samples": n,
        "residual_rel": res_spec, "residual_rel_fro": res_fro,
        "top_rel_diff": abs(ev_h[-1] - ev_g[-1]) / abs(ev_h[-1]),
        "hessian_trivial_rtol3": m - rank(ev_h, 1e-3),
        "final_loss": result.final_loss, "train_accuracy": accuracy,
        "mean_abs_dloss": mean_abs_dloss,
    }
    return Measurement(metrics=metrics, figure_data={"hessian": ev_h.tolist(),
                                                     "ggn": ev_g.tolist()})
