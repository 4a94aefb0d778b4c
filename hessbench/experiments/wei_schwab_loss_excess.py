r"""Wei & Schwab App. A.3 (with Eq. 4-5, 8-11): the SGD equilibrium loss above the minimum.

Prediction. With the noise premise Eq. 5, ``C = (1/S)(1 - S/M) H`` (the minibatch gradient
covariance of an NLL loss whose Eq. 4 second term is small), each non-degenerate mode
equilibrates at ``<theta_i^2> = eta C_ii / (2 lambda_i)`` (Eq. 8), so

    <L> - L* = (1/2) sum_i lambda_i <theta_i^2> = (eta / 4S)(1 - S/M) Tr H.

Setting (ours; the paper states no experiment for this relation). Linear regression with
Gaussian noise, the setting where Eq. 4's second term vanishes on average: ``M`` inputs
x ~ N(0, I_d), targets y = x.w_true + noise_std * eps, per-sample loss
l = (1/2)(x.w - y)^2, the negative log-likelihood of a unit-variance Gaussian model up to a
constant. Then H = (1/M) X^T X for every w, and at the least-squares minimum w_hat the
per-sample gradient second moment Sigma = (1/M) sum_k r_k^2 x_k x_k^T is about
noise_std^2 (1 - d/M) H (residuals r_k; the leverage shrinks them by d/M). With
``noise_std = 1`` Eq. 5 holds up to that; with ``noise_std = 2`` (the control) the model is
misspecified, Eq. 4's second term is -3H, and Sigma is about 4H.

Protocol. For each (batch size S, lr eta) pair, ``chains`` independent SGD chains start at
w_hat; each step draws a batch of S distinct samples uniformly (independently per step and
chain), w <- w - eta * (mean gradient of the batch). After ``steps`` steps (many relaxation
times 1 / (2 eta lambda_min)) the excess L(w) - L(w_hat) is averaged over the chains
(``excess``, with its standard error) and compared with the prediction (``ratio``).
Reported premises: ``noise_trace_ratio`` = Tr Sigma(w_hat) / Tr H (1 where Eq. 5 holds) and
``lr_lambda_max`` = max eta * lambda_max (the relative O(eta lambda) correction of Eq. 8).

References
----------
M. Wei and D. J. Schwab, "How noise affects the Hessian spectrum in overparameterized
neural networks", ICLR 2020: §2.1.2 (Eq. 4-5), §2.2 (Eq. 8-11), Appendix A.3.
"""
from __future__ import annotations

import math
from typing import Any

import torch

from hessbench.experiments.registry import Measurement, experiment
from hessbench.experiments.wei_schwab_negative import a3_equilibrium_excess
from hessbench.utils import seeded_generator

__all__ = ["wei_schwab_loss_excess", "least_squares_problem", "sgd_excess"]

DEFAULTS: dict[str, Any] = {
    "dim": 10, "num_samples": 128, "noise_std": 1.0,
    "batch_sizes": [1, 4, 16, 64, 4], "learning_rates": [0.01, 0.01, 0.01, 0.01, 0.02],
    "chains": 400, "steps": 1000,
}

METRICS = ["batch_size", "learning_rate", "excess", "excess_se", "predicted_excess", "ratio",
           "max_abs_log2_ratio", "noise_trace_ratio", "trace_h", "lr_lambda_max"]

DTYPE = torch.float64


def least_squares_problem(dim: int, num_samples: int, noise_std: float, seed: int,
                          device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(X, y, w_hat)``: Gaussian design, a random true weight (norm ~1), noisy targets, and
    the least-squares minimum."""
    gen = seeded_generator(seed, device)
    x = torch.randn(num_samples, dim, generator=gen, dtype=DTYPE, device=device)
    w_true = torch.randn(dim, generator=gen, dtype=DTYPE, device=device) / math.sqrt(dim)
    y = x @ w_true + noise_std * torch.randn(num_samples, generator=gen, dtype=DTYPE,
                                             device=device)
    w_hat = torch.linalg.lstsq(x, y[:, None]).solution[:, 0]
    return x, y, w_hat


def _loss(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """L(w) = (1/2M) |X w - y|^2 for each row of ``w`` (shape ``(C, d)`` -> ``(C,)``)."""
    return 0.5 * ((w @ x.T - y) ** 2).mean(dim=1)


def sgd_excess(x: torch.Tensor, y: torch.Tensor, w_hat: torch.Tensor, *, batch_size: int,
               lr: float, chains: int, steps: int, seed: int) -> torch.Tensor:
    """L(w_T) - L(w_hat) of ``chains`` independent SGD chains started at ``w_hat`` (shape
    ``(chains,)``); each step's batch is ``batch_size`` distinct samples, uniform."""
    m = x.shape[0]
    gen = seeded_generator(seed, x.device)
    w = w_hat.expand(chains, -1).clone()
    for _ in range(steps):
        # the batch_size smallest of M uniform keys: a uniform subset without replacement
        idx = torch.rand(chains, m, generator=gen, dtype=torch.float32,
                         device=x.device).topk(batch_size, dim=1, largest=False).indices
        xb = x[idx]                                                   # (C, S, d)
        r = (xb * w[:, None, :]).sum(dim=-1) - y[idx]                 # (C, S)
        w = w - lr * (r[:, :, None] * xb).mean(dim=1)
    return _loss(x, y, w) - _loss(x, y, w_hat[None])[0]


def plot_excess(records: list[dict[str, Any]]) -> Any:
    """Measured equilibrium excess against App. A.3's prediction (log-log, y = x dashed)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.2, 4.2), layout="tight")
    ax = fig.add_subplot()
    for rec in records:
        m = rec["metrics"]
        ax.errorbar(m["predicted_excess"], m["excess"], yerr=[2 * s for s in m["excess_se"]],
                    fmt="o", ms=4, capsize=2, label=f"seed {rec['seed']} (+- 2 SE)")
        for px, ex, s, a in zip(m["predicted_excess"], m["excess"], m["batch_size"],
                                m["learning_rate"]):
            ax.annotate(f"S={s}, lr={a:g}", (px, ex), fontsize=6, xytext=(3, -8),
                        textcoords="offset points")
    lo = min(min(r["metrics"]["predicted_excess"]) for r in records)
    hi = max(max(r["metrics"]["predicted_excess"]) for r in records)
    ax.plot([lo, hi], [lo, hi], "k--", lw=0.8, label="App. A.3: equal")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(r"predicted $(\eta/4S)(1 - S/M)\,\mathrm{Tr}\,H$")
    ax.set_ylabel(r"measured $\langle L\rangle - L^*$ (mean over chains)")
    noise = records[0]["params"].get("noise_std", 1.0)
    ax.set_title(f"Wei & Schwab App. A.3 (no figure in the paper): SGD equilibrium loss,\n"
                 f"linear-Gaussian model, noise_std {noise}", fontsize=8)
    ax.legend(fontsize=7)
    return fig


def _check(p: dict[str, Any]) -> None:
    bs, lrs = list(p["batch_sizes"]), list(p["learning_rates"])
    if len(bs) != len(lrs) or not bs:
        raise ValueError(f"batch_sizes ({len(bs)}) and learning_rates ({len(lrs)}) must pair up "
                         "one to one and not be empty")
    if any(not 1 <= int(b) < int(p["num_samples"]) for b in bs):
        raise ValueError(f"every batch size must be in [1, num_samples) (S = M has no noise "
                         f"and no predicted excess), got {bs}")
    if int(p["num_samples"]) <= int(p["dim"]):
        raise ValueError("num_samples must exceed dim (a unique least-squares minimum)")
    if int(p["chains"]) < 2 or int(p["steps"]) < 1:
        raise ValueError("need chains >= 2 (a standard error) and steps >= 1")


@experiment("wei_schwab_loss_excess", figure=plot_excess, metrics=METRICS, defaults=DEFAULTS)
def wei_schwab_loss_excess(p: dict[str, Any], seed: int, device: torch.device) -> Measurement:
    """Equilibrium SGD loss above the minimum per (S, eta) pair against App. A.3."""
    _check(p)
    m, d = int(p["num_samples"]), int(p["dim"])
    x, y, w_hat = least_squares_problem(d, m, float(p["noise_std"]), seed, device)
    h = x.T @ x / m
    trace_h = float(torch.trace(h))
    residual = x @ w_hat - y
    noise_trace = float((residual ** 2 * (x * x).sum(dim=1)).mean())
    lambda_max = float(torch.linalg.eigvalsh(h)[-1])
    rows: dict[str, list] = {k: [] for k in ("excess", "excess_se", "predicted_excess", "ratio")}
    for i, (b, lr) in enumerate(zip(p["batch_sizes"], p["learning_rates"])):
        ex = sgd_excess(x, y, w_hat, batch_size=int(b), lr=float(lr), chains=int(p["chains"]),
                        steps=int(p["steps"]), seed=seed * 1000 + i + 1)
        pred = a3_equilibrium_excess(float(lr), int(b), m, trace_h)
        rows["excess"].append(float(ex.mean()))
        rows["excess_se"].append(float(ex.std() / math.sqrt(ex.numel())))
        rows["predicted_excess"].append(pred)
        rows["ratio"].append(rows["excess"][-1] / pred)
    metrics = {
        **rows, "batch_size": [int(b) for b in p["batch_sizes"]],
        "learning_rate": [float(a) for a in p["learning_rates"]],
        "max_abs_log2_ratio": max(abs(math.log2(r)) if r > 0 else math.inf
                                  for r in rows["ratio"]),
        "noise_trace_ratio": noise_trace / trace_h, "trace_h": trace_h,
        "lr_lambda_max": max(float(a) for a in p["learning_rates"]) * lambda_max}
    return Measurement(metrics=metrics)
