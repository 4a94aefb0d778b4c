"""Dinh et al. (2017), §5: under weight normalisation every minimum is as sharp or as flat
as one likes, with the same function.

A weight-normalised ReLU MLP (w_i = g_i v_i / ||v_i||, :class:`~hessbench.models.
WeightNormLinear`) is trained with full-batch GD (float64) on sklearn digits; theta =
(v, g, b) is the trained point. T_alpha: v -> alpha v (every layer, one alpha) leaves w,
hence the function and the loss, unchanged, so L(D theta) = L(theta) with D = diag(d),
d = alpha on v and 1 on (g, b), and (as in :mod:`hessbench.symmetries`)

    H(T theta) = D^-1 H(theta) D^-1,   H_vv(alpha v) = alpha^-2 H_vv(v).

For each alpha in ``alphas``: outputs, loss, test accuracy against the original; the
dense float64 Hessian at T theta against the law; lambda_max of the v-block H_vv (log-log
slope fitted separately for alpha <= 1, sharper, and alpha >= 1, flatter: both -2) and of
the full Hessian (slope over alpha <= ``fit_alpha_max``: -2 as alpha -> 0; as alpha -> oo
it tends to lambda_max of the (g, b) block, which T leaves alone: reported).

``parameterisation = "plain"`` (the negative control) applies the same map W -> alpha W to
the plain net's weights: not a symmetry, the function changes.

Reference: L. Dinh, R. Pascanu, S. Bengio, Y. Bengio, "Sharp Minima Can Generalize for
Deep Nets", ICML 2017, §5 (weight normalisation); Salimans & Kingma, NeurIPS 2016.
"""
from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn

from hessbench.experiments.dinh_rescaling import (_dense_hessian, _evaluate, _loglog_slope,
                                                  compare_transformed, digits_split, fit)
from hessbench.experiments.registry import Measurement, experiment
from hessbench.linalg import symmetric_eigvalsh
from hessbench.models import WeightNormLinear, mlp, weight_normalise

DEFAULTS: dict[str, Any] = {
    "n_train": 256, "n_test": 512, "depth": 1, "width": 12, "activation": "relu",
    "parameterisation": "weight_norm", "lr": 0.1, "steps": 1000,
    "alphas": [1e-4, 1e-3, 1e-2, 1e-1, 1.0, 1e1, 1e2, 1e3, 1e4], "fit_alpha_max": 0.1,
}

METRICS = [
    "n_params", "n_scaled", "train_loss", "test_accuracy", "alphas",
    "rel_output_diff", "max_rel_output_diff", "max_rel_loss_diff", "max_test_accuracy_diff",
    "law_rel_fro", "max_law_rel_fro", "lambda_max_v", "lambda_max",
    "slope_v_sharp", "slope_v_flat", "decades_sharp", "decades_flat", "lambda_max_slope",
    "sharpening", "flattening_v", "lambda_max_rest",
]

_LOSS = nn.functional.cross_entropy
_PARAMETERISATIONS = ("weight_norm", "plain")


def _check(p: dict[str, Any]) -> dict[str, Any]:
    alphas = [float(a) for a in p["alphas"]]
    if any(not (math.isfinite(a) and a > 0) for a in alphas) or sorted(set(alphas)) != alphas:
        raise ValueError(f"dinh_weight_norm: alphas must be positive, finite, increasing, "
                         f"got {alphas}")
    if 1.0 not in alphas or alphas[0] >= 0.1 or alphas[-1] <= 10.0:
        raise ValueError("dinh_weight_norm: alphas must contain 1 and reach below 0.1 and above 10")
    if sum(a <= p["fit_alpha_max"] for a in alphas) < 2:
        raise ValueError("dinh_weight_norm: need >= 2 alphas <= fit_alpha_max for the slope fit")
    if p["parameterisation"] not in _PARAMETERISATIONS:
        raise ValueError(f"dinh_weight_norm: parameterisation must be one of "
                         f"{_PARAMETERISATIONS}, got {p['parameterisation']!r}")
    if int(p["depth"]) < 1 or int(p["width"]) < 1:
        raise ValueError(f"dinh_weight_norm: depth and width must be >= 1, got {p['depth']}, "
                         f"{p['width']}")
    return {**p, "alphas": alphas}


def scaled_mask(model: nn.Module) -> torch.Tensor:
    """Boolean mask (flattened ``model.parameters()`` order) of the entries T scales: the
    v of every WeightNormLinear, or the weight of every nn.Linear of a plain net."""
    scaled = {id(m.v) for m in model.modules() if isinstance(m, WeightNormLinear)}
    scaled |= {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
    return torch.cat([torch.full((q.numel(),), id(q) in scaled) for q in model.parameters()])


def scale_directions(model: nn.Module, alpha: float) -> nn.Module:
    """A copy with v -> alpha v (weight-normalised layers) or W -> alpha W (plain Linear)."""
    out = copy.deepcopy(model)
    with torch.no_grad():
        for m in out.modules():
            if isinstance(m, WeightNormLinear):
                m.v.mul_(alpha)
            elif isinstance(m, nn.Linear):
                m.weight.mul_(alpha)
    return out


def _train(p: dict[str, Any], seed: int, device: torch.device) -> tuple[nn.Module, dict]:
    data = digits_split(p, seed, device)
    model: nn.Module = mlp(data["x_train"].shape[1], [int(p["width"])] * int(p["depth"]), 10,
                           seed=seed, activation=p["activation"], dtype=torch.float64,
                           device=device)
    if p["parameterisation"] == "weight_norm":
        model = weight_normalise(model)
    fit(model, data, p, seed)
    return model, data


def plot_weight_norm(records: list[dict[str, Any]]) -> Any:
    """lambda_max of H_vv and of H vs alpha (log-log) with the alpha^-2 reference; the
    relative output change vs alpha beside it."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.8), layout="tight")
    ax, ax2 = fig.subplots(1, 2)
    for i, rec in enumerate(records):
        m = rec["metrics"]
        a = torch.tensor(m["alphas"], dtype=torch.float64)
        lab = (lambda s: s) if i == 0 else (lambda s: None)
        ax.loglog(a, m["lambda_max_v"], "o-", color="C0", label=lab(r"$\lambda_{max}(H_{vv})$"))
        ax.loglog(a, m["lambda_max"], "s--", color="C1", label=lab(r"$\lambda_{max}(H)$"))
        ref = m["lambda_max_v"][m["alphas"].index(1.0)] * a ** -2.0
        ax.loglog(a, ref, ":", color="k", lw=1.2, label=lab(r"$\propto\alpha^{-2}$"))
        ax2.semilogx(a, [max(v, 1e-18) for v in m["rel_output_diff"]], "o-",
                     label=f"seed {rec['seed']}")
    m = records[0]["metrics"]
    param = records[0]["params"].get("parameterisation", DEFAULTS["parameterisation"])
    ax.set_title(f"{param}: slopes v-block {m['slope_v_sharp']:.3f} (alpha<=1), "
                 f"{m['slope_v_flat']:.3f} (alpha>=1); H {m['lambda_max_slope']:.3f}", fontsize=8)
    ax.set_xlabel(r"$\alpha$  ($T_\alpha: v \mapsto \alpha v$)")
    ax.set_ylabel("eigenvalue")
    ax.legend(fontsize=7)
    ax2.set_yscale("log")
    ax2.set_xlabel(r"$\alpha$")
    ax2.set_ylabel("max |f(T theta) - f(theta)| / max |f(theta)|")
    ax2.set_title("function change (floored at 1e-18)", fontsize=8)
    ax2.legend(fontsize=7)
    fig.suptitle("Dinh et al. 2017: weight normalisation, same function, any sharpness")
    return fig


@experiment("dinh_weight_norm", figure=plot_weight_norm, metrics=METRICS, defaults=DEFAULTS)
def dinh_weight_norm(params: dict[str, Any], seed: int, device: torch.device) -> Measurement:
    """Invariance, transform law and alpha^-2 law in both directions (module doc)."""
    p = _check(params)
    model, data = _train(p, seed, device)
    base = _evaluate(model, data)
    h0 = _dense_hessian(model, data)
    mask = scaled_mask(model).to(h0.device)
    compared = ("rel_output_diff", "rel_loss_diff", "test_accuracy_diff", "law_rel_fro")
    sweep: dict[str, list[float]] = {k: [] for k in (*compared, "lambda_max_v", "lambda_max")}
    for alpha in p["alphas"]:
        d = torch.where(mask, torch.tensor(alpha, dtype=torch.float64), torch.tensor(1.0,
                        dtype=torch.float64)).to(h0)
        numbers, h = compare_transformed(scale_directions(model, alpha), d, base, h0, data)
        for key in compared:
            sweep[key].append(numbers[key])
        sweep["lambda_max_v"].append(float(symmetric_eigvalsh(h[mask][:, mask])[-1]))
        sweep["lambda_max"].append(float(symmetric_eigvalsh(h)[-1]))

    a = p["alphas"]
    sharp = [i for i, x in enumerate(a) if x <= 1.0]
    flat = [i for i, x in enumerate(a) if x >= 1.0]
    fit = [i for i, x in enumerate(a) if x <= p["fit_alpha_max"]]
    lv, lm, one = sweep["lambda_max_v"], sweep["lambda_max"], a.index(1.0)

    def slope(idx: list[int], ys: list[float]) -> float:
        if min(ys[i] for i in idx) <= 0:
            return float("nan")
        return _loglog_slope([a[i] for i in idx], [ys[i] for i in idx])

    metrics = {
        "n_params": int(mask.numel()), "n_scaled": int(mask.sum()),
        "train_loss": base["loss"], "test_accuracy": base["accuracy"], "alphas": a,
        "rel_output_diff": sweep["rel_output_diff"],
        "max_rel_output_diff": max(sweep["rel_output_diff"]),
        "max_rel_loss_diff": max(sweep["rel_loss_diff"]),
        "max_test_accuracy_diff": max(sweep["test_accuracy_diff"]),
        "law_rel_fro": sweep["law_rel_fro"], "max_law_rel_fro": max(sweep["law_rel_fro"]),
        "lambda_max_v": lv, "lambda_max": lm,
        "slope_v_sharp": slope(sharp, lv), "slope_v_flat": slope(flat, lv),
        "decades_sharp": math.log10(1.0 / a[0]), "decades_flat": math.log10(a[-1]),
        "lambda_max_slope": slope(fit, lm),
        "sharpening": lm[0] / lm[one], "flattening_v": lv[-1] / lv[one],
        "lambda_max_rest": float(symmetric_eigvalsh(h0[~mask][:, ~mask])[-1]),
    }
    return Measurement(metrics=metrics, figure_data={})
