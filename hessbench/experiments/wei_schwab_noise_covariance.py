r"""Wei & Schwab (2020), §2.1.2, Eq. 4-5: the SGD noise covariance is (1/S)(1 - S/M) H.

Prediction. For a minibatch of S samples drawn without replacement from M, Hoffer et al.
give C = (1/S)(1 - S/M) (1/M) sum_k grad l_k grad l_k^T; for a negative log-likelihood
l = -log f, Eq. 4 splits the Hessian as

    H = (1/M) sum_k grad l_k grad l_k^T  -  (1/M) sum_k (1/f_k) hess f_k,

and "ignoring the second term" gives Eq. 5, C = (1/S)(1 - S/M) H. The second term's
average vanishes when the labels follow the model's own predictive distribution
(sum_y hess f(y | x) = hess 1 = 0): then the first term is the Fisher matrix, which for
softmax cross-entropy is the Gauss-Newton matrix G. The review version of the paper says
"we expect our assumptions to be valid only after an early phase of training".

Protocol (one call = one seed; sizes are parameters):

1. ``num_samples`` = M digits (8x8, standardised, float64), an MLP 64 -> ``hidden`` -> 10,
   plain cross-entropy (the NLL Eq. 4 is written for).
2. SGD with heavy-ball momentum 0.9 (the paper's optimiser), batch ``batch_size`` = S,
   constant ``lr``, evaluated once per epoch, until the full-batch loss first falls below
   ``checkpoint_loss`` (at most ``max_epochs``; ``train_loss`` shows whether it got
   there): the checkpoint "after early training".
3. At the checkpoint, with the data's labels (``labels = "data"``) or with labels drawn
   once from the model's predictive distribution softmax f(x_k) (``"model"``, the premise
   check): per-sample gradients g_k, the exact noise covariance of the minibatch gradient
   Sigma = (1/S) (M - S)/(M - 1) (1/M) sum_k (g_k - g)(g_k - g)^T
   (:func:`hessbench.noise.sgd_covariance`, without replacement), the empirical Fisher
   F = (1/M) sum_k g_k g_k^T, and the dense float64 H and G (``hb.hessian``, ``hb.ggn``).
   ``noise = "isotropic"`` (the control) replaces Sigma by Tr(Sigma)/D I.
4. The two statistics: ``alignment`` = <Sigma, H>_F / (||Sigma||_F ||H||_F) (1 for
   Sigma proportional to H) and ``scale`` = Tr Sigma / [(1/S)(1 - S/M) Tr H] (1 for Eq. 5);
   also ``top_subspace_overlap`` of the top-``top_k`` eigenspaces.
5. Premises: ``fisher_gap`` = ||F - H||_F / ||H||_F (Eq. 4's second term relative to H),
   ``true_fisher_gap`` = ||F - G||_F / ||G||_F (labels against the model's distribution),
   ``gauss_newton_gap`` = ||H - G||_F / ||H||_F, ``mean_gradient_share`` = ||g||^2 / Tr F
   (what centring removes), ``neg_to_pos`` = |lambda_min(H)| / lambda_max(H) (the paper's
   "negative eigenvalues are exponentially small" argument), loss and accuracy.

Reference: M. Wei and D. J. Schwab, "How noise affects the Hessian spectrum in
overparameterized neural networks", 2020, §2.1.2 (Eq. 4-5); ICLR 2020 review version, §2.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

import hessbench as hb
from hessbench.data import digits
from hessbench.experiments.registry import Measurement, experiment
from hessbench.experiments.sagun_outliers import _seeds
from hessbench.linalg import symmetric_eigvalsh
from hessbench.models import mlp
from hessbench.noise import sgd_covariance, table1_covariance
from hessbench.problem import LossFn, Problem
from hessbench.training import accuracy, train
from hessbench.utils import seeded_generator

__all__ = ["wei_schwab_noise_covariance", "noise_statistics", "matrix_alignment",
           "noise_scale", "subspace_overlap", "relative_gap", "model_labels",
           "plot_noise_covariance"]

NUM_CLASSES = 10
IN_DIM = 64
MOMENTUM = 0.9
DTYPE = torch.float64

DEFAULTS: dict[str, Any] = {
    "num_samples": 512, "hidden": [16], "activation": "relu", "batch_size": 32,
    "lr": 0.02, "checkpoint_loss": 0.3, "max_epochs": 300, "labels": "data",
    "noise": "sgd", "top_k": 10,
}

METRICS = ["alignment", "scale", "top_subspace_overlap", "fisher_gap", "true_fisher_gap",
           "gauss_newton_gap", "mean_gradient_share", "neg_to_pos", "train_loss",
           "train_accuracy", "epochs", "trace_h", "trace_sigma",
           "num_params", "num_samples", "batch_size"]


def matrix_alignment(a: torch.Tensor, b: torch.Tensor) -> float:
    """Cosine of two matrices in the Frobenius inner product, <A, B>_F / (||A||_F ||B||_F)."""
    na, nb = torch.linalg.matrix_norm(a), torch.linalg.matrix_norm(b)
    if na == 0 or nb == 0:
        raise ValueError("matrix_alignment of a zero matrix is undefined (no noise or no "
                         "curvature at this point)")
    return float((a * b).sum() / (na * nb))


def noise_scale(sigma: torch.Tensor, h: torch.Tensor, batch_size: int, num_samples: int) -> float:
    """Tr Sigma / [(1/S)(1 - S/M) Tr H]: 1 where Eq. 5 holds."""
    if not 1 <= batch_size < num_samples:
        raise ValueError(f"batch_size must be in [1, num_samples = {num_samples}) (S = M has "
                         f"no noise), got {batch_size}")
    predicted = (1.0 - batch_size / num_samples) / batch_size * torch.trace(h)
    if predicted <= 0:
        raise ValueError(f"Tr H = {float(torch.trace(h)):.3g} <= 0: Eq. 5 predicts no "
                         "positive noise scale here")
    return float(torch.trace(sigma) / predicted)


def subspace_overlap(a: torch.Tensor, b: torch.Tensor, k: int) -> float:
    """||U_a^T U_b||_F^2 / k for the top-k (algebraic) eigenvectors of symmetric A and B:
    1 when the two k-dimensional eigenspaces coincide, k/D on average for random ones."""
    if not 1 <= k <= a.shape[-1]:
        raise ValueError(f"top_k must be in [1, {a.shape[-1]}], got {k}")
    ua = torch.linalg.eigh(a).eigenvectors[:, -k:]
    ub = torch.linalg.eigh(b).eigenvectors[:, -k:]
    return float(torch.linalg.matrix_norm(ua.T @ ub) ** 2 / k)


def relative_gap(a: torch.Tensor, b: torch.Tensor) -> float:
    """||A - B||_F / ||B||_F."""
    return float(torch.linalg.matrix_norm(a - b) / torch.linalg.matrix_norm(b))


def model_labels(logits: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One label per row drawn from softmax(logits): the model's predictive distribution."""
    probs = torch.softmax(logits.detach(), dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


LABEL_STYLE = {"data": ("o", "-"), "model": ("s", "--")}
"""Marker (Sigma, right panel) and line style (H) per label source; colour = seed."""


def _check(p: dict[str, Any]) -> None:
    m, s = int(p["num_samples"]), int(p["batch_size"])
    if not 1 <= s < m:
        raise ValueError(f"wei_schwab_noise_covariance: batch_size must be in [1, num_samples"
                         f" = {m}) (S = M has no noise), got {s}")
    if not p["hidden"] or p["lr"] <= 0 or p["checkpoint_loss"] <= 0 or p["max_epochs"] < 1:
        raise ValueError("wei_schwab_noise_covariance: hidden must be non-empty, lr and "
                         "checkpoint_loss > 0, max_epochs >= 1; got "
                         f"{p['hidden']}, {p['lr']}, {p['checkpoint_loss']}, {p['max_epochs']}")
    for key, choices in (("labels", LABEL_STYLE), ("noise", ("sgd", "isotropic"))):
        if p[key] not in choices:
            raise ValueError(f"wei_schwab_noise_covariance: {key} must be one of "
                             f"{', '.join(map(repr, choices))}, got {p[key]!r}")


def plot_noise_covariance(records: list[dict[str, Any]]) -> Any:
    """Left: top eigenvalues of H (lines) and of S Sigma / (1 - S/M) (markers), which Eq. 5
    says coincide. Right: scale against alignment per record, Eq. 5's point (1, 1) and the
    claim's tolerance box. Colour = seed; marker / line style = label source."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Rectangle

    fig = Figure(figsize=(11, 4.4), layout="constrained")
    left, right = fig.subplots(1, 2)
    for rec in records:
        fd, m = rec["figure_data"], rec["metrics"]
        marker, line = LABEL_STYLE[rec["params"]["labels"]]
        colour = f"C{rec['seed'] % 10}"
        ranks = np.arange(1, len(fd["h_top"]) + 1)
        left.plot(ranks, fd["h_top"], line, color=colour, lw=1)
        left.plot(ranks, fd["sigma_top"], marker, color=colour, ms=3, mfc="none")
        right.plot(m["alignment"], m["scale"], marker, color=colour, ms=7)
    seeds = sorted({rec["seed"] for rec in records})
    sources = sorted({rec["params"]["labels"] for rec in records})
    handles = [Line2D([], [], color=f"C{s % 10}", lw=3, label=f"seed {s}") for s in seeds]
    handles += [Line2D([], [], color="grey", ls=LABEL_STYLE[src][1], marker=LABEL_STYLE[src][0],
                       mfc="none", label=f"{src} labels") for src in sources]
    left.set_yscale("log")
    left.set_xlabel("rank of the eigenvalue")
    left.set_ylabel("eigenvalue")
    left.set_title(r"lines: $H$; markers: $S\,\Sigma / (1 - S/M)$ (Eq. 5: equal)", fontsize=8)
    left.legend(handles=handles, fontsize=6)
    right.plot([1.0], [1.0], "k*", ms=12)
    right.add_patch(Rectangle((0.9, 0.8), 0.1, 1.25 - 0.8, fill=False, ls="--", lw=0.8))
    right.set_xlabel(r"alignment $\langle \Sigma, H \rangle_F / (\|\Sigma\|_F \|H\|_F)$")
    right.set_ylabel(r"scale $\mathrm{Tr}\,\Sigma\ /\ [(1/S)(1 - S/M)\,\mathrm{Tr}\,H]$")
    right.set_yscale("log")
    right.set_xlim(-0.05, 1.05)
    right.set_title("star: Eq. 5 (alignment 1, scale 1); dashed box: the claim's tolerance",
                    fontsize=8)
    right.legend(handles=handles, fontsize=6, loc="lower left")
    p = records[0]["params"] if records else {}
    fig.suptitle("Wei & Schwab 2020, Sec. 2.1.2, Eq. 5 (no figure in the paper): SGD noise "
                 f"covariance vs Hessian, digits MLP, checkpoint loss {p.get('checkpoint_loss')}"
                 f", noise {p.get('noise')}", fontsize=9)
    return fig


def noise_statistics(model: nn.Module, loss_fn: LossFn, x: torch.Tensor, y: torch.Tensor,
                     batch_size: int, *, noise: str = "sgd", top_k: int = 10,
                     top: int = 50) -> tuple[dict[str, Any], dict[str, Any]]:
    """Steps 3-5 of the protocol at the model's current point: (metrics, figure data).

    Sigma is the exact covariance of the mean gradient of a uniform batch of ``batch_size``
    distinct samples (:func:`hessbench.noise.sgd_covariance`, without replacement), or for
    ``noise = "isotropic"`` Tr(Sigma)/D I; H and G are dense float64; the figure data are
    the ``top`` largest eigenvalues of H and of S Sigma / (1 - S/M).
    """
    m = len(x)
    grads = Problem(model, loss_fn, (x, y), dtype=DTYPE).per_sample_gradients(x, y)
    sigma = sgd_covariance(grads, batch_size, replacement=False)
    if noise == "isotropic":
        sigma = table1_covariance("gld_dynamic", trace=None, sgd_cov=sigma)
    fisher = grads.T @ grads / m
    h = hb.hessian(model, loss_fn, (x, y), dtype=DTYPE).dense()
    g = hb.ggn(model, loss_fn, (x, y), dtype=DTYPE).dense()
    ev_h = symmetric_eigvalsh(h)
    ev_sigma = symmetric_eigvalsh(sigma)
    metrics = {
        "alignment": matrix_alignment(sigma, h),
        "scale": noise_scale(sigma, h, batch_size, m),
        "top_subspace_overlap": subspace_overlap(sigma, h, top_k),
        "fisher_gap": relative_gap(fisher, h), "true_fisher_gap": relative_gap(fisher, g),
        "gauss_newton_gap": relative_gap(h, g),
        "mean_gradient_share": float(grads.mean(0).square().sum() / torch.trace(fisher)),
        "neg_to_pos": float(max(-ev_h[0], 0.0) / ev_h[-1]),
        "trace_h": float(torch.trace(h)), "trace_sigma": float(torch.trace(sigma)),
        "num_params": h.shape[0],
    }
    rescale = batch_size / (1.0 - batch_size / m)
    figure_data = {"h_top": ev_h.flip(0)[:top].tolist(),
                   "sigma_top": (rescale * ev_sigma.flip(0)[:top]).tolist()}
    return metrics, figure_data


@experiment("wei_schwab_noise_covariance", figure=plot_noise_covariance, metrics=METRICS,
            defaults=DEFAULTS)
def wei_schwab_noise_covariance(p: dict[str, Any], seed: int, device: torch.device) -> Measurement:
    """Train to the checkpoint, then compare the exact minibatch noise covariance with H."""
    _check(p)
    m, s = int(p["num_samples"]), int(p["batch_size"])
    data_seed, init_seed, batch_seed = _seeds(seed)
    x, y = digits(m, seed=data_seed, dtype=DTYPE, device=device)
    model = mlp(IN_DIM, list(p["hidden"]), NUM_CLASSES, activation=p["activation"],
                seed=init_seed, dtype=DTYPE, device=device)
    loss_fn = nn.functional.cross_entropy
    per_epoch = m // s
    result = train(model, loss_fn, x, y, lr=float(p["lr"]), momentum=MOMENTUM, batch_size=s,
                   steps=int(p["max_epochs"]) * per_epoch, eval_every=per_epoch, seed=batch_seed,
                   target_loss=float(p["checkpoint_loss"]))
    with torch.no_grad():
        logits = model(x)
    train_accuracy = accuracy(logits, y)
    if p["labels"] == "model":
        y = model_labels(logits, seeded_generator(batch_seed + 1, device))
    metrics, figure_data = noise_statistics(model, loss_fn, x, y, s, noise=p["noise"],
                                            top_k=int(p["top_k"]))
    metrics.update({"train_loss": result.final_loss, "train_accuracy": train_accuracy,
                    "epochs": result.steps // per_epoch, "num_samples": m, "batch_size": s})
    return Measurement(metrics=metrics, figure_data=figure_data)
