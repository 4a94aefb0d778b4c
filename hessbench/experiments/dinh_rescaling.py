"""Dinh et al. (2017), §4: ReLU rescaling keeps the function but makes the minimum sharp.

A ReLU MLP 64-width^depth-10 (K = depth + 1 Linear layers) is trained with full-batch
GD (float64) on sklearn digits; theta is the trained point. Then, with T_alpha and
D = dT_alpha/dtheta from :mod:`hessbench.symmetries` (H(T theta) = D^{-1} H(theta) D^{-1}):

1. Sweep: T_alpha(theta1, theta2) = (alpha theta1, alpha^-1 theta2) on the first two
   layers, alpha in ``alphas``. For each alpha: outputs, loss and test accuracy of the
   rescaled net against the original (observational equivalence); the dense float64
   Hessian at T theta against D^{-1} H D^{-1} (transform law); lambda_max and trace of
   H(T theta) (log-log slopes fitted over alpha <= ``fit_alpha_max``; the theory gives -2
   as alpha -> 0 since the first layer's block scales as alpha^-2); Keskar's
   epsilon-sharpness (a lower bound, :mod:`hessbench.sharpness`).
2. K-layer theorem: every layer but k* = argmin_k n_k (n_k = parameters of layer k) is
   scaled by alpha_K, layer k* by alpha_K^-(K-1). r = #{eigenvalues of H(theta) >
   tau lambda_max} (tau = ``rank_rtol``; the rank at a minimum, where H is PSD; GD on
   cross-entropy only approaches one, so negative eigenvalues are reported too). With
   M = ``m_factor`` lambda_max(H(theta)) and alpha_K = sqrt(tau / m_factor), Cauchy
   interlacing plus Ostrowski's theorem give at least r - min_k n_k eigenvalues of
   H(T theta) above M; they are counted on the dense H(T theta) with
   :func:`~hessbench.symmetries.count_eigenvalues_above` (exact inertia, robust to the
   alpha^-2k scaling of the bias blocks). With biases the argument guarantees
   r - #{coordinates with d_i > alpha_K} ("guaranteed_bound"): the layer k* and the
   biases of layers after it (c_k >= 1) are not inflated. When k* is the last layer (the
   claim's nets) this is exactly r - min_k n_k, the bias-free theorem's bound.

References
----------
L. Dinh, R. Pascanu, S. Bengio and Y. Bengio, "Sharp Minima Can Generalize for Deep Nets",
ICML 2017: §4 (non-negative homogeneity; the theorems on the spectral norm and on the
K-layer eigenvalues).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

import hessbench as hb
from hessbench import stats
from hessbench.data import digits
from hessbench.experiments.registry import Measurement, experiment
from hessbench.linalg import symmetric_eigvalsh
from hessbench.minimize import grad_norm
from hessbench.models import mlp
from hessbench.sharpness import epsilon_sharpness
from hessbench.symmetries import (count_eigenvalues_above, layer_alphas, layer_sizes,
                                  parameter_scales, rescale, rescaled_hessian)
from hessbench.training import accuracy, train

DEFAULTS: dict[str, Any] = {
    "n_train": 256, "n_test": 512, "depth": 1, "width": 12, "activation": "relu",
    "lr": 0.5, "steps": 2000,
    "alphas": [1e-4, 1e-3, 1e-2, 1e-1, 1.0, 1e1, 1e2], "fit_alpha_max": 0.1,
    "rank_rtol": 1e-10, "m_factor": 10.0,
    "sharpness_epsilon": 1e-3, "sharpness_steps": 20,
}

METRICS = [
    "n_params", "layer_sizes", "train_loss", "test_accuracy", "grad_norm",
    "alphas", "rel_output_diff", "rel_loss_diff", "test_accuracy_diff",
    "max_rel_output_diff", "max_rel_loss_diff", "max_test_accuracy_diff",
    "law_rel_fro", "law_rel_fro_theorem", "max_law_rel_fro",
    "lambda_max", "trace", "lambda_max_slope", "trace_slope", "fit_decades",
    "lambda_min_over_max", "rank", "negative_eigs", "min_layer_size", "theorem_bound",
    "uninflated_params", "guaranteed_bound",
    "alpha_theorem", "threshold_M", "eigs_above_M", "eigs_above_M_excess",
    "sharpness", "sharpness_before", "sharpness_after",
]

_LOSS = nn.functional.cross_entropy
# Activations for which T_alpha is a symmetry (positively homogeneous); any other
# activation (tanh) is the negative control: the same parameter map changes the function.
HOMOGENEOUS_ACTIVATIONS = ("relu", "linear")


def _check(p: dict[str, Any]) -> dict[str, Any]:
    alphas = [float(a) for a in p["alphas"]]
    if any(not a > 0 for a in alphas) or sorted(alphas) != alphas:
        raise ValueError(f"dinh_rescaling: alphas must be positive and increasing, got {alphas}")
    if sum(a <= p["fit_alpha_max"] for a in alphas) < 2:
        raise ValueError("dinh_rescaling: need >= 2 alphas <= fit_alpha_max for the slope fit")
    if int(p["depth"]) < 1 or int(p["width"]) < 1:
        raise ValueError(f"dinh_rescaling: depth and width must be >= 1, got {p['depth']}, "
                         f"{p['width']}")
    if not (0 < p["rank_rtol"] < 1 and p["m_factor"] > 1):
        raise ValueError("dinh_rescaling: need 0 < rank_rtol < 1 and m_factor > 1 "
                         f"(got {p['rank_rtol']}, {p['m_factor']})")
    return {**p, "alphas": alphas}


def _evaluate(model: nn.Module, data: dict[str, torch.Tensor]) -> dict[str, Any]:
    with torch.no_grad():
        out_train, out_test = model(data["x_train"]), model(data["x_test"])
    return {"outputs": torch.cat([out_train, out_test]),
            "loss": float(_LOSS(out_train, data["y_train"])),
            "accuracy": accuracy(out_test, data["y_test"])}


def digits_split(p: dict[str, Any], seed: int, device: torch.device) -> dict[str, torch.Tensor]:
    """float64 digits, standardised on the first ``n_train``: x/y_train, x/y_test."""
    x, y = digits(p["n_train"] + p["n_test"], seed=seed, fit_on=p["n_train"],
                  dtype=torch.float64, device=device)
    return {"x_train": x[:p["n_train"]], "y_train": y[:p["n_train"]],
            "x_test": x[p["n_train"]:], "y_test": y[p["n_train"]:]}


def fit(model: nn.Module, data: dict[str, torch.Tensor], p: dict[str, Any], seed: int) -> None:
    """Full-batch GD on the cross-entropy, in place (``lr``, ``steps``)."""
    train(model, _LOSS, data["x_train"], data["y_train"], lr=p["lr"], steps=p["steps"],
          seed=seed, eval_every=max(p["steps"] // 10, 1))


def changes(ev: dict[str, Any], base: dict[str, Any]) -> tuple[float, float, float]:
    """Relative output change max|f' - f| / max|f|, relative loss change and test-accuracy
    change between two :func:`_evaluate` results."""
    out = (ev["outputs"] - base["outputs"]).abs().max() / base["outputs"].abs().max()
    return (float(out), abs(ev["loss"] - base["loss"]) / base["loss"],
            abs(ev["accuracy"] - base["accuracy"]))


def _dense_hessian(model: nn.Module, data: dict[str, torch.Tensor]) -> torch.Tensor:
    """The dense float64 training-loss Hessian, symmetrised: the transform law, the trace
    and the inertia count use the symmetric matrix itself, not only its eigenvalues."""
    op = hb.hessian(model, _LOSS, (data["x_train"], data["y_train"]), dtype=torch.float64)
    h = op.dense()
    return (h + h.T) / 2


def _rel_fro(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.linalg.norm(a - b) / torch.linalg.norm(b))


def _loglog_slope(x: list[float], y: list[float]) -> float:
    """Least-squares slope of log10 y against log10 x."""
    return stats.linear_fit(np.log10(x), np.log10(y), min_points=2).slope


def compare_transformed(scaled: nn.Module, d: torch.Tensor, base: dict[str, Any],
                        h0: torch.Tensor, data: dict[str, torch.Tensor]
                        ) -> tuple[dict[str, float], torch.Tensor]:
    """Invariance and transform-law numbers of the net ``scaled`` = T theta against the
    original (``base``, ``h0``), for a diagonal T = diag(``d``), and H(T theta): the output,
    loss and test-accuracy changes (:func:`changes`) and ||H(T theta) - D^-1 H D^-1|| / ||.||."""
    ev = _evaluate(scaled, data)
    h = _dense_hessian(scaled, data)
    out, loss, accuracy = changes(ev, base)
    return ({"rel_output_diff": out, "rel_loss_diff": loss, "test_accuracy_diff": accuracy,
             "law_rel_fro": _rel_fro(h, rescaled_hessian(h0, d)),
             "loss": ev["loss"], "accuracy": ev["accuracy"]}, h)


def _compare(model: nn.Module, alphas: list[float], base: dict[str, Any], h0: torch.Tensor,
             data: dict[str, torch.Tensor], homogeneous: bool
             ) -> tuple[dict[str, float], torch.Tensor, torch.Tensor, nn.Module]:
    """:func:`compare_transformed` for one layer rescaling, with H(T theta), d and the
    rescaled net (``homogeneous=False``: T_alpha applied to a non-ReLU net, the control)."""
    scaled = rescale(model, alphas, homogeneous=homogeneous)
    d = parameter_scales(model, alphas, homogeneous=homogeneous)
    numbers, h = compare_transformed(scaled, d, base, h0, data)
    return numbers, h, d, scaled


def _train(p: dict[str, Any], seed: int, device: torch.device) -> tuple[nn.Module, dict]:
    data = digits_split(p, seed, device)
    model = mlp(data["x_train"].shape[1], [int(p["width"])] * int(p["depth"]), 10, seed=seed,
                activation=p["activation"], dtype=torch.float64, device=device)
    fit(model, data, p, seed)
    return model, data


def plot_rescaling(records: list[dict[str, Any]]) -> Any:
    """Per architecture: lambda_max and trace of H(T_alpha theta) vs alpha (log-log) with
    the alpha^-2 reference, loss and test accuracy (flat) on the same axes; Keskar
    sharpness vs alpha beside it."""
    from matplotlib.figure import Figure

    points = sorted({int(r["params"]["depth"]) for r in records})
    fig = Figure(figsize=(10, 3.6 * len(points)), layout="tight")
    axes = fig.subplots(len(points), 2, squeeze=False)
    for row, point in zip(axes, points):
        recs = [r for r in records if int(r["params"]["depth"]) == point]
        for i, rec in enumerate(recs):
            m, fd = rec["metrics"], rec["figure_data"]
            a = np.array(m["alphas"])
            lab = (lambda s: s) if i == 0 else (lambda s: None)
            row[0].loglog(a, m["lambda_max"], "o-", color="C0", label=lab(r"$\lambda_{max}$"))
            row[0].loglog(a, m["trace"], "s-", color="C1", label=lab("trace"))
            row[0].loglog(a, fd["losses"], "--", color="C2", label=lab("train loss"))
            row[0].loglog(a, fd["accuracies"], ":", color="C3", label=lab("test accuracy"))
            left = a[a <= 1.0]
            ref = m["lambda_max"][0] * (left / a[0]) ** -2.0
            row[0].loglog(left, ref, "--", color="k", lw=1.2, zorder=3,
                          label=lab(r"$\propto\alpha^{-2}$"))
            row[1].loglog(a, m["sharpness"], "o-", color="C4",
                          label=f"seed {rec['seed']}")
        m = recs[0]["metrics"]
        row[0].set_title(f"depth {point}, width {recs[0]['params']['width']}: log-log slope "
                         f"{m['lambda_max_slope']:.3f} (trace {m['trace_slope']:.3f})", fontsize=9)
        row[0].set_xlabel(r"$\alpha$  ($T_\alpha$: layer 1 $\times\alpha$, layer 2 "
                          r"$\times\alpha^{-1}$)")
        row[0].legend(fontsize=7)
        row[1].set_title(f"Keskar $\\epsilon$-sharpness (lower bound); K-layer theorem: "
                         f"{m['eigs_above_M']} eigs > M vs bound {m['theorem_bound']}",
                         fontsize=8)
        row[1].set_xlabel(r"$\alpha$")
        row[1].set_ylabel("sharpness (%)")
        row[1].legend(fontsize=7)
    fig.suptitle("Dinh et al. 2017: ReLU rescaling, same function, sharper minimum")
    return fig


@experiment("dinh_rescaling", figure=plot_rescaling, metrics=METRICS, defaults=DEFAULTS)
def dinh_rescaling(params: dict[str, Any], seed: int, device: torch.device) -> Measurement:
    """Invariance, transform law, alpha^-2 inflation and the K-layer count (module doc)."""
    p = _check(params)
    model, data = _train(p, seed, device)
    base = _evaluate(model, data)
    h0 = _dense_hessian(model, data)
    ev0 = symmetric_eigvalsh(h0)
    lam0 = float(ev0[-1])
    homogeneous = p["activation"] in HOMOGENEOUS_ACTIVATIONS
    sizes = layer_sizes(model, homogeneous=homogeneous)
    k = len(sizes)

    def sharpness(net: nn.Module) -> float:
        return epsilon_sharpness(net, _LOSS, (data["x_train"], data["y_train"]),
                                 p["sharpness_epsilon"], steps=p["sharpness_steps"],
                                 seed=seed).value

    sweep: dict[str, list[float]] = {key: [] for key in
                                     ["rel_output_diff", "rel_loss_diff", "test_accuracy_diff",
                                      "law_rel_fro", "loss", "accuracy", "lambda_max",
                                      "trace", "sharpness"]}
    for alpha in p["alphas"]:
        numbers, h, _, scaled = _compare(model, layer_alphas(k, alpha, scaled=[0], compensate=1),
                                         base, h0, data, homogeneous)
        for key, value in numbers.items():
            sweep[key].append(value)
        sweep["lambda_max"].append(float(symmetric_eigvalsh(h)[-1]))
        sweep["trace"].append(float(h.diagonal().sum()))
        sweep["sharpness"].append(sharpness(scaled))

    fit = [i for i, a in enumerate(p["alphas"]) if a <= p["fit_alpha_max"]]
    fit_alphas = [p["alphas"][i] for i in fit]

    # K-layer theorem: all layers but the smallest one scaled by alpha_K.
    k_star = int(np.argmin(sizes))
    alpha_k = math.sqrt(p["rank_rtol"] / p["m_factor"])
    theorem_alphas = layer_alphas(k, alpha_k, scaled=[j for j in range(k) if j != k_star],
                                  compensate=k_star)
    numbers, h_k, d_k, _ = _compare(model, theorem_alphas, base, h0, data, homogeneous)
    threshold = p["m_factor"] * lam0
    count = count_eigenvalues_above(h_k, threshold, d_k)
    rank = int((ev0 > p["rank_rtol"] * lam0).sum())
    bound = rank - min(sizes)
    uninflated = int((d_k > alpha_k * (1 + 1e-12)).sum())

    metrics = {
        "n_params": sum(sizes), "layer_sizes": sizes, "train_loss": base["loss"],
        "test_accuracy": base["accuracy"], "grad_norm": grad_norm(model, _LOSS, data["x_train"], data["y_train"])[1],
        "alphas": p["alphas"],
        **{key: sweep[key] for key in ["rel_output_diff", "rel_loss_diff", "test_accuracy_diff",
                                       "law_rel_fro", "lambda_max", "trace", "sharpness"]},
        "max_rel_output_diff": max(sweep["rel_output_diff"] + [numbers["rel_output_diff"]]),
        "max_rel_loss_diff": max(sweep["rel_loss_diff"] + [numbers["rel_loss_diff"]]),
        "max_test_accuracy_diff": max(sweep["test_accuracy_diff"]
                                      + [numbers["test_accuracy_diff"]]),
        "law_rel_fro_theorem": numbers["law_rel_fro"],
        "max_law_rel_fro": max(sweep["law_rel_fro"] + [numbers["law_rel_fro"]]),
        "lambda_max_slope": _loglog_slope(fit_alphas, [sweep["lambda_max"][i] for i in fit]),
        "trace_slope": _loglog_slope(fit_alphas, [sweep["trace"][i] for i in fit]),
        "fit_decades": math.log10(max(fit_alphas) / min(fit_alphas)),
        "lambda_min_over_max": float(ev0[0]) / lam0,
        "rank": rank, "negative_eigs": int((ev0 < -p["rank_rtol"] * lam0).sum()),
        "min_layer_size": min(sizes), "theorem_bound": bound,
        "uninflated_params": uninflated, "guaranteed_bound": rank - uninflated,
        "alpha_theorem": alpha_k, "threshold_M": threshold,
        "eigs_above_M": count, "eigs_above_M_excess": count - bound,
        "sharpness_before": sharpness(model),
        "sharpness_after": sweep["sharpness"][0],
    }
    return Measurement(metrics=metrics, figure_data={"losses": sweep["loss"],
                                                     "accuracies": sweep["accuracy"]})
