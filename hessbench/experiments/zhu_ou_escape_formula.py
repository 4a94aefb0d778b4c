r"""Zhu et al. (ICML 2019), Eq. 13: the expected loss increase of the OU process, by Monte Carlo.

For L(theta) = 1/2 theta^T H theta (H positive definite) and the OU process
dtheta = -H theta dt + Sigma^{1/2} dW started at the minimum theta_0 = 0,

    E L(theta_t) - L(theta_0) = 1/4 Tr((I - exp(-2 H t)) Sigma)            (Eq. 13).

Monte Carlo: ``chains`` independent Euler-Maruyama paths with step h,
theta_{j+1} = (I - h H) theta_j + sqrt(h) Sigma^{1/2} xi_j, to t = k h. The mean of
L(theta_k) over chains, with its standard error, is compared with

* Eq. 13 (continuous time), and
* the exact expectation of the discretised recursion
  (``hessbench.noise.discrete_expected_loss_increase``), which differs from Eq. 13
  by the discretisation gap 1 + O(h lambda_max) (computed exactly, reported).

Random problems (per seed): H = Q diag(lambda) Q^T with Q Haar-orthogonal and
lambda log-uniform in [lambda_min, lambda_max]; Sigma = W W^T / d, W standard normal
(a Wishart matrix, generically not commuting with H), scaled to Tr Sigma = 1.
The step is h = step_times_lambda_max / lambda_max; t = lambda_t / lambda_min.

References
----------
Z. Zhu, J. Wu, B. Yu, L. Wu and J. Ma, "The Anisotropic Noise in Stochastic Gradient
Descent: Its Behavior of Escaping from Sharp Minima and Regularization Effects", ICML 2019:
§3.1 (Eq. 13), Appendix A.2 (its derivation).
"""
from __future__ import annotations

import math
from typing import Any

import torch

from hessbench.experiments.registry import Measurement, experiment
from hessbench.noise import (discrete_expected_loss_increase, escape_indicator,
                             normalise_trace, ou_expected_loss_increase, sample_gaussian)
from hessbench.utils import seeded_generator

DEFAULTS: dict[str, Any] = {
    "dim": 10, "chains": 20000, "lambda_min": 0.5, "lambda_max": 5.0, "lambda_t": 0.25,
    "step_times_lambda_max": 2e-3,
}
METRICS = ["mc_mean", "mc_stderr", "eq13", "discrete_exact", "first_order", "z_eq13",
           "z_discrete", "gap_rel", "gap_over_stderr", "steps", "t"]


def random_problem(dim: int, lambda_min: float, lambda_max: float, generator: torch.Generator,
                   device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(H, Sigma) as in the module docstring, float64."""
    opts = {"generator": generator, "dtype": torch.float64, "device": device}
    q, r = torch.linalg.qr(torch.randn(dim, dim, **opts))
    q = q * torch.sign(torch.diagonal(r))            # Haar: fix the signs of the QR factor
    u = torch.rand(dim, **opts)
    lam = torch.exp(math.log(lambda_min) + u * (math.log(lambda_max) - math.log(lambda_min)))
    h = (q * lam) @ q.T
    w = torch.randn(dim, dim, **opts)
    return (h + h.T) / 2, normalise_trace(w @ w.T / dim, 1.0)


def plot_ou(records: list[dict[str, Any]]) -> Any:
    """Monte Carlo mean +- 1.96 SE against Eq. 13 and the exact discrete expectation,
    per problem."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5, 3.8), layout="tight")
    ax = fig.add_subplot()
    for i, rec in enumerate(records):
        m = rec["metrics"]
        ax.errorbar(i, m["mc_mean"] / m["eq13"], yerr=1.96 * m["mc_stderr"] / m["eq13"], fmt="o",
                    color="tab:blue", capsize=3,
                    label="Monte Carlo / Eq. 13 (95% CI)" if i == 0 else None)
        ax.plot(i, m["discrete_exact"] / m["eq13"], "x", color="tab:red",
                label="exact discrete / Eq. 13" if i == 0 else None)
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xticks(range(len(records)),
                  [f"d={r['params']['dim']}\nseed {r['seed']}" for r in records], fontsize=7)
    ax.set(ylabel=r"$E\,L(\theta_t) - L(\theta_0)$, relative to Eq. 13",
           title="Eq. 13: 1/4 Tr((I - exp(-2Ht)) Sigma)")
    ax.legend(fontsize=7)
    return fig


@experiment("zhu_ou_escape_formula", figure=plot_ou, metrics=METRICS, defaults=DEFAULTS)
def zhu_ou_escape_formula(p: dict[str, Any], seed: int, device: torch.device) -> Measurement:
    """Monte Carlo of the expected loss increase against Eq. 13 on one random quadratic."""
    dim, chains = int(p["dim"]), int(p["chains"])
    lam_min, lam_max = float(p["lambda_min"]), float(p["lambda_max"])
    if not 0 < lam_min <= lam_max:
        raise ValueError(f"need 0 < lambda_min <= lambda_max, got {lam_min}, {lam_max}")
    gen = seeded_generator(seed, device)
    h, sigma = random_problem(dim, lam_min, lam_max, gen, device)
    step = float(p["step_times_lambda_max"]) / lam_max
    t = float(p["lambda_t"]) / lam_min
    steps = max(1, round(t / step))
    step = t / steps                                     # land exactly on t

    contraction = torch.eye(dim, dtype=torch.float64, device=device) - step * h
    step_cov = step * sigma
    theta = torch.zeros(chains, dim, dtype=torch.float64, device=device)
    for _ in range(steps):
        theta = theta @ contraction + sample_gaussian(step_cov, gen, (chains,))
    loss = 0.5 * ((theta @ h) * theta).sum(dim=1)
    mc_mean, mc_stderr = loss.mean().item(), (loss.std() / math.sqrt(chains)).item()

    eq13 = ou_expected_loss_increase(h, sigma, t).item()
    discrete = discrete_expected_loss_increase(h, step_cov, step, steps).item()
    metrics = {
        "mc_mean": mc_mean, "mc_stderr": mc_stderr, "eq13": eq13, "discrete_exact": discrete,
        "first_order": 0.5 * t * escape_indicator(h, sigma).item(),
        "z_eq13": (mc_mean - eq13) / mc_stderr, "z_discrete": (mc_mean - discrete) / mc_stderr,
        "gap_rel": discrete / eq13 - 1, "gap_over_stderr": (discrete - eq13) / mc_stderr,
        "steps": steps, "t": t,
    }
    return Measurement(metrics=metrics, figure_data={})
