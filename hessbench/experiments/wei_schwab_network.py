"""Wei & Schwab (2019) §4.3, Fig. 3 at smoke scale: the Hessian trace along an SGD
path, each point measured at a nearby minimum.

Protocol (issue 5, part 3). A ReLU MLP on ``n_samples`` sklearn digits with
label-smoothed cross-entropy (label smoothing keeps the minimum at finite weights):

1. full-batch GD for ``gd_steps`` steps from a seeded initialisation -> theta*, L* = L(theta*);
2. from theta*, ``checkpoints`` intervals of ``interval`` SGD steps (batch ``batch_size``);
   after each, a copy of the state is *projected*: GD with the same learning rate
   until the training loss is below L* (at most ``project_max_steps``), and the exact
   Hessian trace (float64, ``hb.trace(method="exact")``, n HVPs) is taken there;
3. control (equality case of Theorem 1, no gradient noise): the same from theta* with
   full-batch GD instead of SGD.

The trace slope along each path is the least-squares slope of Tr H(projection)
against the step (theta* at step 0), per 1000 steps. ``control_ratio`` is
``|GD slope| / |SGD slope|``; ``grad_norm_star`` says how close theta* is to a
stationary point. A projection that does not get below L* within its
budget is counted in ``projection_failures`` (the trace there is not at a minimum).

The net is small (64-16-10 at smoke, 1210 parameters) and not overparameterised for
500 x 9 label constraints; its degenerate valley is then the ReLU rescaling orbit
(one direction per hidden unit), along which Tr H is not invariant, plus any
near-flat directions. GD is stopped after ``gd_steps`` steps rather than at an
exact minimum, so the GD control also carries the residual convergence.

Hyper-parameters were chosen before any verdict: ``lr = 0.5`` keeps
``lr * lambda_max`` (reported) well below 2 at theta*, and the SGD and control paths
use the same learning rate; ``batch_size = 25`` is 1/20 of the data.
"""
from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn

import hessbench as hb
from hessbench.data import digits
from hessbench.experiments.registry import Measurement, experiment, with_defaults
from hessbench.models import mlp
from hessbench.training import full_loss, train

__all__ = ["wei_schwab_trace_network"]

DEFAULTS: dict[str, Any] = {
    "n_samples": 500, "data_seed": 0, "hidden": [16], "label_smoothing": 0.1, "lr": 0.5,
    "gd_steps": 3000, "batch_size": 25, "interval": 400, "checkpoints": 5,
    "project_max_steps": 3000, "project_eval_every": 10,
}

PATHS = ("sgd", "gd")
METRICS = (["steps", "loss_star", "grad_norm_star", "lr_times_lambda_max", "control_ratio",
            "projection_failures"]
           + [f"{p}_{m}" for p in PATHS
              for m in ("trace", "trace_slope", "trace_change", "projection_steps")])


def _hessian(model: nn.Module, loss_fn: nn.Module, data: tuple[torch.Tensor, torch.Tensor]
             ) -> hb.CurvatureOperator:
    return hb.hessian(model, loss_fn, data, dtype=torch.float64, chunk_size=128)


def _exact_trace(model: nn.Module, loss_fn: nn.Module, data: tuple[torch.Tensor, torch.Tensor]
                 ) -> float:
    return hb.trace(_hessian(model, loss_fn, data), method="exact", block_size=128).value


def _project(model: nn.Module, loss_fn: nn.Module, x: torch.Tensor, y: torch.Tensor,
             p: dict[str, Any], target: float) -> tuple[nn.Module, int, bool]:
    """GD on a copy of ``model`` until the training loss is below ``target``."""
    proj = copy.deepcopy(model)
    if full_loss(proj, loss_fn, x, y) < target:
        return proj, 0, True
    res = train(proj, loss_fn, x, y, lr=p["lr"], steps=int(p["project_max_steps"]),
                eval_every=int(p["project_eval_every"]), target_loss=target)
    return proj, res.steps, res.stopped == "target_loss"


def _slope_per_1000(steps: list[int], values: list[float]) -> float:
    s = torch.tensor(steps, dtype=torch.float64) / 1000.0
    v = torch.tensor(values, dtype=torch.float64)
    sc = s - s.mean()
    return float((sc * (v - v.mean())).sum() / (sc * sc).sum())


def plot_network(records: list[dict[str, Any]]) -> Any:
    """Fig. 3 analogue: Tr H at the projected minima along SGD and GD paths (mean +- sd)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 3.8))
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
    ax.set_xlabel("steps after the GD minimum")
    ax.set_ylabel("Tr H at the projected minimum (exact)")
    ax.set_title("Wei & Schwab Fig. 3 (smoke analogue): trace along the path")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


@experiment("wei_schwab_trace_network", figure=plot_network, metrics=METRICS)
def wei_schwab_trace_network(params: dict[str, Any], seed: int,
                             device: torch.device) -> Measurement:
    """Exact Hessian trace at projected minima along an SGD path and a GD control path."""
    p = with_defaults("wei_schwab_trace_network", DEFAULTS, params)
    dt = torch.float64
    x, y = digits(int(p["n_samples"]), seed=int(p["data_seed"]), dtype=dt, device=device)
    model = mlp(x.shape[1], list(p["hidden"]), 10, seed=seed, dtype=dt, device=device)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=float(p["label_smoothing"]))
    train(model, loss_fn, x, y, lr=p["lr"], steps=int(p["gd_steps"]), eval_every=int(p["gd_steps"]))
    loss_star = full_loss(model, loss_fn, x, y)
    grad_star = torch.autograd.grad(loss_fn(model(x), y), list(model.parameters()))
    grad_norm_star = float(torch.cat([g.reshape(-1) for g in grad_star]).norm())
    h_star = _hessian(model, loss_fn, (x, y)).dense()
    trace_star, lambda_max = float(h_star.trace()), float(torch.linalg.eigvalsh(h_star)[-1])
    interval, k = int(p["interval"]), int(p["checkpoints"])
    steps = [c * interval for c in range(k + 1)]
    metrics: dict[str, Any] = {"steps": steps, "loss_star": loss_star,
                               "grad_norm_star": grad_norm_star,
                               "lr_times_lambda_max": p["lr"] * lambda_max}
    failures = 0
    for path in PATHS:
        state = copy.deepcopy(model)
        traces, proj_steps = [trace_star], [0]
        for c in range(1, k + 1):
            train(state, loss_fn, x, y, lr=p["lr"], steps=interval, eval_every=interval,
                  batch_size=int(p["batch_size"]) if path == "sgd" else None,
                  seed=seed * 1000 + c)
            proj, n_steps, ok = _project(state, loss_fn, x, y, p, loss_star)
            failures += not ok
            traces.append(_exact_trace(proj, loss_fn, (x, y)))
            proj_steps.append(n_steps)
        metrics[f"{path}_trace"] = traces
        metrics[f"{path}_trace_slope"] = _slope_per_1000(steps, traces)
        metrics[f"{path}_trace_change"] = traces[-1] - traces[0]
        metrics[f"{path}_projection_steps"] = proj_steps
    metrics["projection_failures"] = failures
    sgd_slope = abs(metrics["sgd_trace_slope"])
    metrics["control_ratio"] = abs(metrics["gd_trace_slope"]) / sgd_slope if sgd_slope else math.inf
    return Measurement(metrics=metrics)
