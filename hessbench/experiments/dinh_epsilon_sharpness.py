"""Dinh et al. (2017), §4: an equivalent rectified net whose epsilon-ball reaches y = 0.

The slides' net y = relu(x theta1) theta2 (one hidden layer, no biases) is trained with
full-batch GD (float64) on sklearn digits; theta is the trained point. For
alpha* = epsilon / ||theta1||_2 the rescaled theta' = T_alpha*(theta) = (epsilon theta1 /
||theta1||, theta2 / alpha*) is observationally equivalent, and the probe point

    p(alpha) = (theta1' - epsilon theta1' / ||theta1'||, theta2'),   ||p - theta'||_2 = epsilon,

lies in B_2(epsilon, theta'); at alpha = alpha* its first layer is 0, the degenerate model
y = 0. L(p) lower-bounds max_{B_2(epsilon, theta')} L, so Keskar's epsilon-sharpness
100 (max L - L(theta')) / (1 + L(theta')) is bounded below by the same expression at L(p).
It is measured for alpha = alpha* r, r in ``alpha_factors``, and at alpha = 1 (theta itself).
By homogeneity L(p(alpha)) = L(s theta1, theta2), s = 1 - epsilon / (alpha ||theta1||):
the bound grows as alpha shrinks to alpha*.

Reference: L. Dinh, R. Pascanu, S. Bengio, Y. Bengio, "Sharp Minima Can Generalize for
Deep Nets", ICML 2017, §4 (epsilon-sharpness theorem); N. S. Keskar et al., ICLR 2017
(epsilon-sharpness).
"""
from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn

from hessbench.experiments.dinh_rescaling import (HOMOGENEOUS_ACTIVATIONS, _evaluate, changes,
                                                  digits_split, fit)
from hessbench.experiments.registry import Measurement, experiment
from hessbench.models import mlp
from hessbench.symmetries import linear_layers, rescale

DEFAULTS: dict[str, Any] = {
    "n_train": 256, "n_test": 512, "width": 12, "activation": "relu", "lr": 0.5,
    "steps": 2000, "epsilon": 1e-3, "alpha_factors": [1.0, 1.5, 2.0, 4.0, 10.0, 100.0],
}

METRICS = [
    "n_params", "train_loss", "test_accuracy", "theta1_norm", "alpha_star", "alphas",
    "max_rel_output_diff", "max_rel_loss_diff", "max_ball_ratio",
    "probe_loss", "sharpness_lb", "sharpness_lb_original", "degenerate_loss",
    "probe_vs_degenerate", "lb_increments", "sharpness_growth",
]

_LOSS = nn.functional.cross_entropy


def _check(p: dict[str, Any]) -> dict[str, Any]:
    factors = [float(r) for r in p["alpha_factors"]]
    if not factors or factors[0] != 1.0 or sorted(set(factors)) != factors:
        raise ValueError(f"dinh_epsilon_sharpness: alpha_factors must be increasing and start "
                         f"at 1 (alpha = alpha*), got {factors}")
    if not (math.isfinite(p["epsilon"]) and p["epsilon"] > 0):
        raise ValueError(f"dinh_epsilon_sharpness: epsilon must be > 0, got {p['epsilon']}")
    if int(p["width"]) < 1:
        raise ValueError(f"dinh_epsilon_sharpness: width must be >= 1, got {p['width']}")
    return {**p, "alpha_factors": factors}


def keskar_sharpness(max_loss: float, loss: float) -> float:
    """Keskar et al.'s normalisation 100 (max L - L) / (1 + L), in percent."""
    return 100.0 * (max_loss - loss) / (1.0 + loss)


def probe(model: nn.Module, epsilon: float) -> tuple[nn.Module, float]:
    """The point theta1 -> theta1 (1 - epsilon / ||theta1||_2) (first Linear layer) and its
    Euclidean distance to ``model``'s parameters."""
    first = linear_layers(model, homogeneous=False)[0]
    norm = float(torch.linalg.vector_norm(first.weight.detach()))
    shifted = copy.deepcopy(model)
    with torch.no_grad():
        linear_layers(shifted, homogeneous=False)[0].weight.mul_(1.0 - epsilon / norm)
    with torch.no_grad():
        dist = float(torch.linalg.vector_norm(torch.cat(
            [(a - b).reshape(-1) for a, b in zip(shifted.parameters(), model.parameters())])))
    return shifted, dist


def plot_epsilon_sharpness(records: list[dict[str, Any]]) -> Any:
    """Lower bound of the epsilon-sharpness vs alpha / alpha* (log-log), with the original
    theta's bound and the degenerate model's ceiling."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4), layout="tight")
    ax = fig.subplots()
    for rec in records:
        m = rec["metrics"]
        r = [a / m["alpha_star"] for a in m["alphas"]]
        eps = rec["params"].get("epsilon", DEFAULTS["epsilon"])
        line, = ax.loglog(r, [max(v, 1e-12) for v in m["sharpness_lb"]], "o-",
                          label=f"eps {eps:g}, seed {rec['seed']}")
        ax.axhline(max(m["sharpness_lb_original"], 1e-12), color=line.get_color(), ls=":")
        ax.axhline(keskar_sharpness(m["degenerate_loss"], m["train_loss"]), color="k",
                   ls="--", lw=0.8)
    ax.set_xlabel(r"$\alpha / \alpha^*$  ($\alpha^* = \epsilon / \|\theta_1\|_2$)")
    ax.set_ylabel(r"$\epsilon$-sharpness lower bound (%)")
    ax.set_title("dotted: original theta; dashed: degenerate model y = 0", fontsize=8)
    ax.legend(fontsize=6)
    fig.suptitle("Dinh et al. 2017: epsilon-sharpness of equivalent rectified nets")
    return fig


@experiment("dinh_epsilon_sharpness", figure=plot_epsilon_sharpness, metrics=METRICS,
            defaults=DEFAULTS)
def dinh_epsilon_sharpness(params: dict[str, Any], seed: int,
                           device: torch.device) -> Measurement:
    """Equivalence, probe in the ball, and the growing lower bound (module doc)."""
    p = _check(params)
    data = digits_split(p, seed, device)
    model = mlp(data["x_train"].shape[1], [int(p["width"])], 10, bias=False, seed=seed,
                activation=p["activation"], dtype=torch.float64, device=device)
    fit(model, data, p, seed)
    homogeneous = p["activation"] in HOMOGENEOUS_ACTIVATIONS
    base = _evaluate(model, data)
    eps = float(p["epsilon"])
    norm1 = float(torch.linalg.vector_norm(model[0].weight.detach()))
    alpha_star = eps / norm1
    alphas = [alpha_star * r for r in p["alpha_factors"]]
    out_diff, loss_diff, ratios, probe_loss, lb = [], [], [], [], []
    for alpha in alphas:
        scaled = rescale(model, [alpha, 1.0 / alpha], homogeneous=homogeneous)
        ev = _evaluate(scaled, data)
        out, loss, _ = changes(ev, base)
        out_diff.append(out)
        loss_diff.append(loss)
        point, dist = probe(scaled, eps)
        ratios.append(dist / eps)
        probe_loss.append(_evaluate(point, data)["loss"])
        lb.append(keskar_sharpness(probe_loss[-1], ev["loss"]))
    original = keskar_sharpness(_evaluate(probe(model, eps)[0], data)["loss"], base["loss"])
    zero = torch.zeros(len(data["y_train"]), 10, dtype=torch.float64, device=device)
    degenerate = float(_LOSS(zero, data["y_train"]))
    metrics = {
        "n_params": sum(q.numel() for q in model.parameters()), "train_loss": base["loss"],
        "test_accuracy": base["accuracy"], "theta1_norm": norm1, "alpha_star": alpha_star,
        "alphas": alphas, "max_rel_output_diff": max(out_diff),
        "max_rel_loss_diff": max(loss_diff), "max_ball_ratio": max(ratios),
        "probe_loss": probe_loss, "sharpness_lb": lb, "sharpness_lb_original": original,
        "degenerate_loss": degenerate,
        "probe_vs_degenerate": abs(probe_loss[0] - degenerate) / degenerate,
        "lb_increments": [a - b for a, b in zip(lb[:-1], lb[1:])],
        "sharpness_growth": lb[0] / original if original > 0 else float("nan"),
    }
    return Measurement(metrics=metrics, figure_data={})
