"""Wei & Schwab §4.3, Fig. 3: the Hessian trace along an SGD path, each point measured at a
nearby minimum.

Protocol. An MLP (``activation`` "relu", or "linear" for a deep linear net) on
``n_samples`` sklearn digits with label-smoothed cross-entropy (label smoothing keeps the
minimum at finite weights):

1. full-batch GD for ``gd_steps`` steps from a seeded initialisation, then
   :func:`hessbench.minimize.minimize` (float64 full-batch L-BFGS with a strong-Wolfe line
   search, at most ``polish_max_iter`` iterations, then at most ``newton_max_steps``
   Newton-CG steps of ``cg_max_iter`` exact HVPs) until ||grad L|| <= ``grad_tol``
   -> theta*, L*;
2. from theta*, ``checkpoints`` intervals of ``interval`` SGD steps (batch ``batch_size``);
   after each, a copy of the state is *projected* to a nearby minimum with the same
   minimiser and the same ``grad_tol`` (``project_max_iter`` L-BFGS iterations, the same
   Newton budget), and the exact Hessian trace is taken there;
3. control (equality case of Theorem 1, no gradient noise): the same from theta* with
   full-batch GD instead of SGD, at the same learning rate.

The trace slope along each path is the least-squares slope of Tr H(projection) against
the step (theta* at step 0), per 1000 steps; ``control_ratio`` = |GD slope| / |SGD slope|.
Every minimisation (theta* and the 2 x ``checkpoints`` projections) that ends above
``grad_tol`` is counted in ``not_converged``; ``lr_times_lambda_max`` at theta* says
whether GD at this learning rate can stay there at all (linear stability needs < 2), and
``kinks_star`` counts the (sample, unit) pre-activations of theta* within ``KINK`` of a
ReLU kink.

The gradient tolerance. Near a minimum, GD with lr * lambda_max < 2 moves each
eigen-direction by at most min(lr T, 1/lambda) |g| over T steps, so the GD control drifts
by at most lr T ||g|| in parameter space and changes Tr H by at most S lr T ||g||,
S = ||grad Tr H||. The control asks for |GD change| < 0.5 |SGD slope| T; ``grad_tol`` is
chosen so that S lr T grad_tol is a small fraction of that (each claim file derives its
value). A loss-value line search stalls near ||g|| ~ 1e-8 in float64, hence the Newton-CG
stage.

Why a linear variant (claim ``wei-schwab-trace-linear-network``). Theorem 1 needs a smooth
valley of minima with gradient noise on it. The ReLU net's minima are non-smooth (its
pre-activations converge onto the kinks and ||grad L|| stalls near 1e-3; see
``wei-schwab-trace-network.toml``), and a smooth activation such as tanh has no continuous
symmetry, so below interpolation its minima are isolated (no valley to move along) and
above it the per-sample gradients, hence the noise, vanish at the minimum. A deep linear
net f = W2 W1 x + ... has both: its minima are the factorisations of the best product
matrix, a smooth manifold (the orbit W1 -> A W1, W2 -> W2 A^-1, A invertible), on which
Tr H varies (the balance of W1 and W2), and it computes an affine map (10 x 64 + 10 = 650
numbers, at any width) that cannot fit 500 x 9 smoothed-label constraints, so the
per-sample gradients at a minimum do not vanish.

Exact trace without n HVPs: a ReLU or linear MLP is affine in every single parameter (the
activation pattern is locally constant, relu'' = 0, identity'' = 0), so
diag(d^2 f / d theta^2) = 0 and
diag H = diag G with the Gauss-Newton matrix G = (1/N) sum_n J_n^T A_n J_n, A_n the loss
Hessian in the logits. Hence Tr H = (1/N) sum_n tr(A_n J_n J_n^T), from per-sample
Jacobians (tested against the dense autograd Hessian).

References
----------
M. Wei and D. J. Schwab, "How noise affects the Hessian spectrum in overparameterized
neural networks", ICLR 2020: §2 (Theorem 1 and its equality case), §4.3 and Fig. 3.
"""
from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, jacrev, vmap

import hessbench as hb
from hessbench import stats
from hessbench.data import digits
from hessbench.experiments.registry import Measurement, experiment
from hessbench.minimize import grad_norm, minimize
from hessbench.models import mlp
from hessbench.training import train

__all__ = ["wei_schwab_trace_network", "piecewise_linear_mlp_trace"]

DEFAULTS: dict[str, Any] = {
    "n_samples": 500, "data_seed": 0, "hidden": [16], "activation": "relu",
    "label_smoothing": 0.1, "lr": 0.5,
    "gd_steps": 3000, "batch_size": 25, "interval": 400, "checkpoints": 5,
    "grad_tol": 1e-8, "polish_max_iter": 500, "project_max_iter": 100, "newton_max_steps": 3,
    "cg_max_iter": 100,
}

# mlp activations under which the net is affine in each single parameter (exact trace below)
PIECEWISE_LINEAR = {"relu": nn.ReLU, "linear": nn.Identity}

KINK = 1e-6  # |pre-activation| below which a (sample, unit) pair counts as sitting on a kink

PATHS = ("sgd", "gd")
METRICS = (["steps", "loss_gd", "grad_norm_gd", "loss_star", "grad_norm_star",
            "polish_iterations", "kinks_star", "lr_times_lambda_max", "control_ratio",
            "not_converged"]
           + [f"{p}_{m}" for p in PATHS
              for m in ("trace", "trace_slope", "trace_change", "projection_iterations",
                        "projection_grad_norm", "projection_loss_gap")])


def piecewise_linear_mlp_trace(model: nn.Sequential, loss_fn: nn.Module, inputs: torch.Tensor,
                               targets: torch.Tensor) -> float:
    """Exact Tr H of a mean-reduced loss of a ReLU or linear MLP: (1/N) sum_n tr(A_n J_n J_n^T).

    ``J_n`` is sample n's Jacobian of the logits in the parameters and ``A_n`` the loss
    Hessian in the logits; diag H = diag(Gauss-Newton) because such an MLP is affine in
    each single parameter (almost everywhere, and exactly in autograd's relu'' = 0).
    """
    if not (isinstance(model, nn.Sequential)
            and all(isinstance(m, (nn.Linear, *PIECEWISE_LINEAR.values())) for m in model)):
        raise TypeError("piecewise_linear_mlp_trace needs an nn.Sequential of Linear, ReLU and "
                        "Identity layers; for other models use "
                        "hb.trace(hb.hessian(...), method='exact')")
    if getattr(loss_fn, "reduction", "mean") != "mean":
        raise ValueError(f"piecewise_linear_mlp_trace needs a mean-reduced loss, got "
                         f"reduction={loss_fn.reduction!r}")
    params = {n: p.detach() for n, p in model.named_parameters()}

    def logits(p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return functional_call(model, p, (x.unsqueeze(0),)).squeeze(0)

    def sample_loss(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return loss_fn(z.unsqueeze(0), t.unsqueeze(0))

    with torch.no_grad():
        z = model(inputs)
    a = vmap(jacrev(jacrev(sample_loss)))(z, targets)                   # (N, K, K)
    total = torch.zeros((), dtype=torch.float64, device=inputs.device)
    for j in vmap(jacrev(logits), in_dims=(None, 0))(params, inputs).values():
        j = j.reshape(len(inputs), z.shape[1], -1)                          # (N, K, P_layer)
        total = total + (j * (a @ j)).sum(dtype=torch.float64)
    return float(total) / len(inputs)


def _slope_per_1000(steps: list[int], values: list[float]) -> float:
    """Least-squares slope of ``values`` against ``steps``, per 1000 steps."""
    return stats.linear_fit([s / 1000.0 for s in steps], values, min_points=2).slope


@torch.no_grad()
def _kinks(model: nn.Sequential, inputs: torch.Tensor) -> int:
    """Number of (sample, unit) pre-activations with |a| < KINK, over every ReLU input."""
    count, h = 0, inputs
    for layer in model:
        if isinstance(layer, nn.ReLU):
            count += int((h.abs() < KINK).sum())
        h = layer(h)
    return count


def plot_network(records: list[dict[str, Any]]) -> Any:
    """Fig. 3 analogue: Tr H at the projected minima along SGD and GD paths (mean +- sd)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 3.8), layout="tight")
    ax = fig.add_subplot()
    steps = records[0]["metrics"]["steps"]
    for path, colour, label in (("sgd", "C0", "SGD"), ("gd", "C3", "GD (control)")):
        runs = torch.tensor([r["metrics"][f"{path}_trace"] for r in records], dtype=torch.float64)
        for run in runs:
            ax.plot(steps, run, colour, lw=0.5, alpha=0.4)
        mean = runs.mean(0)
        sd = runs.std(0) if len(runs) > 1 else torch.zeros_like(mean)
        ax.plot(steps, mean, colour, lw=2, label=f"{label}, mean of {len(runs)} seeds")
        ax.fill_between(steps, mean - sd, mean + sd, color=colour, alpha=0.15)
    ax.set_xlabel("steps after the minimum theta*")
    ax.set_ylabel("Tr H at the projected minimum (exact)")
    ax.set_title(f"Wei & Schwab Fig. 3 analogue ({records[0]['params'].get('activation', 'relu')}"
                 " MLP): trace along the path")
    ax.legend(fontsize=7)
    return fig


@experiment("wei_schwab_trace_network", figure=plot_network, metrics=METRICS, defaults=DEFAULTS)
def wei_schwab_trace_network(p: dict[str, Any], seed: int, device: torch.device) -> Measurement:
    """Exact Hessian trace at projected minima along an SGD path and a GD control path."""
    dt, lr, tol = torch.float64, float(p["lr"]), float(p["grad_tol"])
    x, y = digits(int(p["n_samples"]), seed=int(p["data_seed"]), dtype=dt, device=device)
    if p["activation"] not in PIECEWISE_LINEAR:
        raise ValueError(f"activation must be 'relu' or 'linear' (the exact trace needs an MLP "
                         f"affine in each parameter), got {p['activation']!r}")
    model = mlp(x.shape[1], list(p["hidden"]), 10, activation=p["activation"], seed=seed,
                dtype=dt, device=device)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=float(p["label_smoothing"]))
    train(model, loss_fn, x, y, lr=lr, steps=int(p["gd_steps"]), eval_every=int(p["gd_steps"]))
    loss_gd, grad_norm_gd = grad_norm(model, loss_fn, x, y)
    budget = {"grad_tol": tol, "newton_max_steps": int(p["newton_max_steps"]),
              "cg_max_iter": int(p["cg_max_iter"]), "on_unconverged": "ignore"}
    star = minimize(model, loss_fn, x, y, max_iter=int(p["polish_max_iter"]), **budget)
    lambda_max = float(hb.eigsh(hb.hessian(model, loss_fn, (x, y), dtype=dt), k=1,
                                which="LA").values[0])
    trace_star = piecewise_linear_mlp_trace(model, loss_fn, x, y)
    interval, k = int(p["interval"]), int(p["checkpoints"])
    steps = [c * interval for c in range(k + 1)]
    metrics: dict[str, Any] = {
        "steps": steps, "loss_gd": loss_gd, "grad_norm_gd": grad_norm_gd,
        "loss_star": star.loss, "grad_norm_star": star.grad_norm,
        "polish_iterations": star.iterations, "kinks_star": _kinks(model, x),
        "lr_times_lambda_max": lr * lambda_max}
    not_converged = int(not star.converged)
    for path in PATHS:
        state = copy.deepcopy(model)
        traces, iters, norms, gaps = [trace_star], [0], [star.grad_norm], [0.0]
        for c in range(1, k + 1):
            train(state, loss_fn, x, y, lr=lr, steps=interval, eval_every=interval,
                  batch_size=int(p["batch_size"]) if path == "sgd" else None,
                  seed=seed * 1000 + c)
            proj = copy.deepcopy(state)
            res = minimize(proj, loss_fn, x, y, max_iter=int(p["project_max_iter"]), **budget)
            not_converged += not res.converged
            traces.append(piecewise_linear_mlp_trace(proj, loss_fn, x, y))
            iters.append(res.iterations)
            norms.append(res.grad_norm)
            gaps.append(res.loss - star.loss)
        metrics[f"{path}_trace"] = traces
        metrics[f"{path}_trace_slope"] = _slope_per_1000(steps, traces)
        metrics[f"{path}_trace_change"] = traces[-1] - traces[0]
        metrics[f"{path}_projection_iterations"] = iters
        metrics[f"{path}_projection_grad_norm"] = norms
        metrics[f"{path}_projection_loss_gap"] = gaps
    metrics["not_converged"] = not_converged
    sgd_slope = abs(metrics["sgd_trace_slope"])
    metrics["control_ratio"] = abs(metrics["gd_trace_slope"]) / sgd_slope if sgd_slope else math.inf
    return Measurement(metrics=metrics)
