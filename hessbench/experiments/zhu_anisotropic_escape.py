r"""Zhu et al. (ICML 2019) §5.1, Fig. 2, App. D.1: escaping the sharp minimum of a 2-D toy.

Surface and data (``hessbench.landscapes``, Zhu section; as in the authors' released
code github.com/uuujf/SGDNoise, 2Dim/): ``L(w) = (1/N) sum_i l(w; x_i)``, N = 100,

    l(w; x) = min(10 (c u - s v)^2 + 100 (c u + s v)^2, |w - x + (1, 1)|^2),
    (u, v) = w - x - (1, 1),

c = cos(pi/4), s = sin(pi/4), x = 1e-2 (sqrt(10) z_1, z_2) K, z ~ N(0, I). Sharp minimum
near (1, 1) (Hessian eigenvalues 20, 200), flat one near (-1, -1) (Hessian 2 I).

Dynamics (Table 1; ``hessbench.noise``), every run started at w_0 = (1, 1):

    w_{t+1} = w_t - lr grad L(w_t) + eps_t,   eps_t ~ N(0, Sigma_t),   Tr Sigma_t = 0.01,

lr = 0.005, 500 steps, with Sigma_t of shape 0 (GD), I (GLD const),
diag(Sigma_sgd) (GLD diag), Sigma_sgd itself (GLD leading, k = 2 = D), H (GLD
Hessian, k = 2) and u_1 u_1^T (GLD 1st eigvec(H)); Sigma_sgd and H are recomputed
at every step from the per-sample gradients / Hessians of the chain's own data
(Sigma_sgd centred, batch size 1: its scale is irrelevant after normalisation).
As in the released code the noise is added to the weights unscaled by lr, and a
run succeeds when it ends with both coordinates < -0.5 (the flat basin).

Each chain is one independent run of App. D.1: its own data set and its own noise.
The data sets are shared across dynamics (as in the released code); the noise of
each dynamic comes from its own generator, so the success counts of two dynamics
are independent given the data. With ``noise_structure = "isotropic"`` (the control) every
noisy dynamic draws the GLD const noise (same trace, own generator): the structure is
removed and only the labels differ.

References
----------
Z. Zhu, J. Wu, B. Yu, L. Wu and J. Ma, "The Anisotropic Noise in Stochastic Gradient
Descent: Its Behavior of Escaping from Sharp Minima and Regularization Effects", ICML 2019:
§3.2 (Prop. 1, Tr(H Sigma)), Table 1 (the dynamics), §5.1 and Fig. 2, Appendix D.1.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from hessbench.experiments.registry import Measurement, experiment
from hessbench.landscapes import (ZHU_FLAT_CENTRE, ZHU_SHARP_CENTRE, zhu_two_basin_grad,
                                  zhu_two_basin_hessian, zhu_two_basin_loss, zhu_two_basin_samples)
from hessbench.noise import (FiniteSum, escape_indicator, sgd_covariance, simulate_gld,
                             table1_covariance)
from hessbench.utils import seeded_generator

KINDS = ("gd", "gld_const", "gld_diag", "gld_leading", "gld_hessian", "gld_1st_eigvec")
LABELS = {"gd": "GD", "gld_const": "GLD const", "gld_diag": "GLD diag",
          "gld_leading": "GLD leading", "gld_hessian": "GLD Hessian",
          "gld_1st_eigvec": "GLD 1st eigvec(H)"}

DEFAULTS: dict[str, Any] = {
    "chains": 500, "n_samples": 100, "lr": 0.005, "steps": 500, "noise_trace": 0.01, "k": 2,
    "success_below": -0.5, "record_every": 5, "show_chains": 1, "noise_structure": "table1",
}

STRUCTURES = ("table1", "isotropic")

METRICS = (["trials"] + [f"successes_{k}" for k in KINDS] + [f"rate_{k}" for k in KINDS]
           + [f"indicator_{k}" for k in KINDS])


def _objective(theta: float) -> FiniteSum:
    return FiniteSum(
        per_sample_grads=lambda w, xs: zhu_two_basin_grad(w[:, None, :], xs, theta),
        hessian=lambda w, xs: zhu_two_basin_hessian(w[:, None, :], xs, theta).mean(dim=1))


def _noise_seed(seed: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def indicator_along(kind: str, objective: FiniteSum, data: torch.Tensor, path: torch.Tensor, *,
                    trace: float, k: int) -> list[float]:
    """Tr(H Sigma) of dynamic ``kind`` at each point of one chain's recorded ``path``
    (shape ``(T, 2)``) on that chain's ``data`` (``(N, 2)``): Zhu et al. Fig. 2, third panel."""
    xs = data.expand(path.shape[0], *data.shape)
    hess = objective.hessian(path, xs)
    cov = table1_covariance(kind, trace=trace, sgd_cov=sgd_covariance(
        objective.per_sample_grads(path, xs)), hessian=hess, k=k)
    return escape_indicator(hess, cov).cpu().tolist()


def wilson_interval(successes: int, trials: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (95% for the default z)."""
    if trials <= 0:
        raise ValueError(f"trials must be > 0, got {trials}")
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    # clip to [0, 1] and keep p inside despite rounding
    return min(p, max(0.0, centre - half)), max(p, min(1.0, centre + half))


def plot_escape(records: list[dict[str, Any]]) -> Any:
    """Fig. 2: trajectories on the contour plot (left), success rates with 95% Wilson
    intervals pooled over seeds (right)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(16, 4.5), layout="tight")
    ax_c, ax_b, ax_i = (fig.add_subplot(1, 3, j) for j in (1, 2, 3))
    first = records[0]["figure_data"]
    xs = torch.tensor(first["data"], dtype=torch.float64)
    grid = torch.linspace(-1.4, 1.6, 121, dtype=torch.float64)
    w1, w2 = torch.meshgrid(grid, grid, indexing="xy")
    surface = zhu_two_basin_loss(torch.stack([w1, w2], -1)[:, :, None, :], xs).mean(-1)
    cs = ax_c.contour(w1.numpy(), w2.numpy(), surface.numpy(), levels=8)
    ax_c.clabel(cs, inline=True, fontsize=7)
    markers = dict(zip(KINDS, "_*s^|v"))
    for kind in KINDS:
        path = np.asarray(first["paths"][kind])          # (T, chains shown, 2)
        for j in range(path.shape[1]):
            ax_c.scatter(path[:, j, 0], path[:, j, 1], s=10, marker=markers[kind],
                         label=LABELS[kind] if j == 0 else None)
    ax_c.set_xlim(-1.4, 1.6)
    ax_c.set_ylim(-1.4, 1.6)
    ax_c.set_xlabel("w1")
    ax_c.set_ylabel("w2")
    ax_c.legend(loc="lower right", fontsize=7)
    ax_c.set_title("trajectories (one run per dynamic)")

    trials = sum(r["metrics"]["trials"] for r in records)
    rates, lows, highs = [], [], []
    for kind in KINDS:
        succ = sum(r["metrics"][f"successes_{kind}"] for r in records)
        lo, hi = wilson_interval(succ, trials)
        rates.append(succ / trials)
        lows.append(succ / trials - lo)
        highs.append(hi - succ / trials)
    pos = np.arange(len(KINDS))
    ax_b.bar(pos, rates, yerr=[lows, highs], capsize=4, color="tab:blue")
    ax_b.set_xticks(pos, [LABELS[k] for k in KINDS], rotation=30, ha="right", fontsize=8)
    ax_b.set_ylabel("success rate (ends in the flat basin)")
    ax_b.set_title(f"escape success, {trials} runs per dynamic, 95% Wilson CI")
    every = first.get("record_every", 1)
    for kind in KINDS:
        values = first.get("indicators", {}).get(kind)
        if values:
            ax_i.plot([every * t for t in range(len(values))], values, label=LABELS[kind])
    ax_i.set_xlabel("iteration")
    ax_i.set_ylabel(r"Tr$(H \Sigma)$ along the run shown")
    ax_i.set_yscale("symlog", linthresh=1e-3)
    ax_i.set_title("Zhu et al. Fig. 2 (third panel): the escape indicator")
    ax_i.legend(fontsize=7)
    fig.suptitle("Zhu et al. (ICML 2019) Fig. 2: escaping the sharp minimum of the 2-D toy",
                 fontsize=10)
    return fig


@experiment("zhu_anisotropic_escape", figure=plot_escape, metrics=METRICS, defaults=DEFAULTS)
def zhu_anisotropic_escape(p: dict[str, Any], seed: int, device: torch.device) -> Measurement:
    """Success rates of escaping from the sharp minimum for the Table 1 dynamics."""
    if p["noise_structure"] not in STRUCTURES:
        raise ValueError(f"noise_structure must be one of {STRUCTURES}, got {p['noise_structure']!r}")
    chains, theta = int(p["chains"]), math.pi / 4
    data = zhu_two_basin_samples(chains, int(p["n_samples"]),
                                 generator=seeded_generator(seed, device), theta=theta,
                                 device=device)
    start = torch.tensor(ZHU_SHARP_CENTRE, dtype=torch.float64, device=device).expand(chains, 2)
    objective = _objective(theta)

    # Tr(H Sigma) of every noise at the start point, mean over chains (Prop. 1's indicator)
    per_sample = objective.per_sample_grads(start, data)
    hess = objective.hessian(start, data)
    sgd = sgd_covariance(per_sample)

    metrics: dict[str, Any] = {"trials": chains}
    paths: dict[str, list] = {}
    indicators: dict[str, list[float]] = {}
    show = int(p["show_chains"])
    for index, kind in enumerate(KINDS):
        drawn = kind if p["noise_structure"] == "table1" or kind == "gd" else "gld_const"
        cov = table1_covariance(drawn, trace=float(p["noise_trace"]), sgd_cov=sgd, hessian=hess,
                                k=int(p["k"]))
        metrics[f"indicator_{kind}"] = escape_indicator(hess, cov).mean().item()
        run = simulate_gld(drawn, objective, data, start, lr=float(p["lr"]), steps=int(p["steps"]),
                           trace=float(p["noise_trace"]), seed=_noise_seed(seed, index),
                           k=int(p["k"]), record_every=int(p["record_every"]))
        success = (run.final < float(p["success_below"])).all(dim=1)
        metrics[f"successes_{kind}"] = int(success.sum().item())
        metrics[f"rate_{kind}"] = metrics[f"successes_{kind}"] / chains
        paths[kind] = run.path[:, :show].cpu().tolist()
        indicators[kind] = indicator_along(drawn, objective, data[0], run.path[:, 0],
                                           trace=float(p["noise_trace"]), k=int(p["k"]))
    figure_data = {"paths": paths, "indicators": indicators,
                   "record_every": int(p["record_every"]), "data": data[0].cpu().tolist(),
                   "flat_centre": list(ZHU_FLAT_CENTRE)}
    return Measurement(metrics=metrics, figure_data=figure_data)
