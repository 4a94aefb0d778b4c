r"""Wei & Schwab §4.3, Fig. 3: the Hessian trace along the projected SGD path of an
over-parameterised network.

Protocol (§2.1.1 and §4.3; the paper's words in ``claims/wei-schwab-trace-network.toml``):

1. An MLP (ReLU, ``hidden`` widths) on ``n_samples`` sklearn digits with label-smoothed
   cross-entropy is trained from a seeded initialisation by SGD with heavy-ball
   ``momentum`` and constant ``lr`` (batch ``batch_size``) for ``epochs`` epochs; the
   full-batch training loss is evaluated once per epoch and the minimal value is ``L_min``.
2. After the early phase (``early_epochs``), the path is continued for the remaining epochs
   by SGD (the claim) or, with ``continue_with = "gd"``, by full-batch GD with the same lr
   and momentum from the same state (the equality case of Theorem 1: no gradient noise).
   The step count (updates) is the same either way; the GD velocity starts at 0.
3. Every ``checkpoint_epochs`` epochs from the end of the early phase on, a copy of the
   state is *projected*: trained by full-batch GD with the same lr and momentum (velocity
   restarted at 0) until its training loss is below ``L_min`` (footnote 3: "a point with
   training loss less than a threshold"), at most ``project_max_steps`` steps; a
   projection that does not get there is counted in ``not_projected``. The exact Hessian
   trace is taken at each projected point.
4. Line connectedness (§2.1.1): consecutive projected points are connected if the training
   loss at ``connect_points`` evenly spaced interior points of the segment stays below the
   threshold ``L_floor + connect_excess_factor (L_min - L_floor)``, where ``L_floor`` is
   the smallest possible loss (the entropy of the smoothed labels); so the excess loss on
   the segment may be at most ``connect_excess_factor`` times SGD's minimal excess.

``trace_slope`` is the least-squares slope of Tr H(projection) against the step over the
projected points (the early phase excluded), per 1000 steps.

Exact trace without n HVPs: a ReLU MLP is affine in every single parameter (the activation
pattern is locally constant, relu'' = 0), so diag(d^2 f / d theta^2) = 0 and diag H =
diag G with the Gauss-Newton matrix G = (1/N) sum_n J_n^T A_n J_n, A_n the loss Hessian in
the logits. Hence Tr H = (1/N) sum_n tr(A_n J_n J_n^T), from per-sample Jacobians (tested
against the dense autograd Hessian).

References
----------
M. Wei and D. J. Schwab, "How noise affects the Hessian spectrum in overparameterized
neural networks", ICLR 2020: §2 (Theorem 1 and its equality case), §2.1.1 (projection,
line connectedness, footnote 3), §4.3 and Fig. 3.
"""
from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, jacrev, vmap

from hessbench import stats
from hessbench.data import digits
from hessbench.experiments.registry import Measurement, experiment
from hessbench.losses import smoothed_target_entropy
from hessbench.models import mlp
from hessbench.training import accuracy, full_loss, train

__all__ = ["wei_schwab_trace_network", "piecewise_linear_mlp_trace", "segment_losses"]

DEFAULTS: dict[str, Any] = {
    "n_samples": 500, "data_seed": 0, "hidden": [128], "label_smoothing": 0.1,
    "lr": 0.1, "momentum": 0.9, "batch_size": 25, "epochs": 150, "early_epochs": 30,
    "checkpoint_epochs": 10, "continue_with": "sgd", "project_max_steps": 2000,
    "connect_points": 10, "connect_excess_factor": 2.0,
}

CONTINUATIONS = ("sgd", "gd")

METRICS = ["steps", "loss_min", "loss_floor", "epoch_losses", "trace", "trace_slope",
           "trace_change", "projection_steps", "projection_loss", "not_projected",
           "segment_max_excess_ratio", "line_connected_fraction", "train_accuracy"]


def piecewise_linear_mlp_trace(model: nn.Sequential, loss_fn: nn.Module, inputs: torch.Tensor,
                               targets: torch.Tensor) -> float:
    """Exact Tr H of a mean-reduced loss of a ReLU or linear MLP: (1/N) sum_n tr(A_n J_n J_n^T).

    ``J_n`` is sample n's Jacobian of the logits in the parameters and ``A_n`` the loss
    Hessian in the logits; diag H = diag(Gauss-Newton) because such an MLP is affine in
    each single parameter (almost everywhere, and exactly in autograd's relu'' = 0).
    """
    if not (isinstance(model, nn.Sequential)
            and all(isinstance(m, (nn.Linear, nn.ReLU, nn.Identity)) for m in model)):
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


@torch.no_grad()
def segment_losses(a: nn.Module, b: nn.Module, loss_fn: nn.Module, inputs: torch.Tensor,
                   targets: torch.Tensor, points: int) -> list[float]:
    """Training loss at ``points`` evenly spaced interior points t = i / (points + 1) of the
    segment from ``a``'s parameters to ``b``'s (same architecture)."""
    pa, pb = dict(a.named_parameters()), dict(b.named_parameters())
    out = []
    for i in range(1, points + 1):
        t = i / (points + 1)
        mix = {n: (1 - t) * pa[n] + t * pb[n] for n in pa}
        out.append(float(loss_fn(functional_call(a, mix, (inputs,)), targets)))
    return out


def plot_network(records: list[dict[str, Any]]) -> Any:
    """Fig. 3 analogue: Tr H at the projected points against the step (one line per seed,
    mean +- sd), and the largest excess loss on each segment against the connectedness
    threshold."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.8), layout="tight")
    ax, bx = fig.subplots(1, 2)
    steps = records[0]["metrics"]["steps"]
    runs = torch.tensor([r["metrics"]["trace"] for r in records], dtype=torch.float64)
    for rec, run in zip(records, runs):
        ax.plot(steps, run, "C0", lw=0.6, alpha=0.5)
        bx.plot(steps[1:], rec["metrics"]["segment_max_excess_ratio"], "C1", lw=0.6, alpha=0.6)
    mean = runs.mean(0)
    sd = runs.std(0) if len(runs) > 1 else torch.zeros_like(mean)
    ax.errorbar(steps, mean, yerr=sd, color="C0", lw=2, capsize=2,
                label=f"mean +- sd of {len(runs)} seeds")
    cont = records[0]["params"].get("continue_with", "sgd")
    ax.set_xlabel("step (SGD early phase excluded)")
    ax.set_ylabel("Tr H at the projected point (exact)")
    ax.set_title(f"Wei & Schwab Fig. 3 analogue: trace along the projected path "
                 f"({cont.upper()} after the early phase)", fontsize=8)
    ax.legend(fontsize=7)
    bx.axhline(float(records[0]["params"].get("connect_excess_factor", 2.0)), color="k", ls=":",
               lw=0.8, label="connectedness threshold")
    bx.set_xlabel("step of the segment's end point")
    bx.set_ylabel("max excess loss on segment / SGD's min excess")
    bx.set_title("§2.1.1 line connectedness of consecutive projected points", fontsize=8)
    bx.legend(fontsize=7)
    return fig


def _check(p: dict[str, Any]) -> None:
    if p["continue_with"] not in CONTINUATIONS:
        raise ValueError(f"continue_with must be one of {CONTINUATIONS}, got {p['continue_with']!r}")
    if not 1 <= p["early_epochs"] < p["epochs"] or p["checkpoint_epochs"] < 1:
        raise ValueError(f"need 1 <= early_epochs < epochs and checkpoint_epochs >= 1, got "
                         f"{p['early_epochs']}, {p['epochs']}, {p['checkpoint_epochs']}")
    if (p["epochs"] - p["early_epochs"]) // p["checkpoint_epochs"] < 2:
        raise ValueError("fewer than 3 projected points after the early phase; a slope needs "
                         "more epochs or denser checkpoints")
    if p["n_samples"] % p["batch_size"]:
        raise ValueError(f"batch_size ({p['batch_size']}) must divide n_samples "
                         f"({p['n_samples']}) so that an epoch is a whole number of steps")


@experiment("wei_schwab_trace_network", figure=plot_network, metrics=METRICS, defaults=DEFAULTS)
def wei_schwab_trace_network(p: dict[str, Any], seed: int, device: torch.device) -> Measurement:
    """Exact Hessian trace at GD projections of checkpoints along a momentum-SGD path."""
    _check(p)
    dt, lr, mu = torch.float64, float(p["lr"]), float(p["momentum"])
    x, y = digits(int(p["n_samples"]), seed=int(p["data_seed"]), dtype=dt, device=device)
    model = mlp(x.shape[1], list(p["hidden"]), 10, activation="relu", seed=seed, dtype=dt,
                device=device)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=float(p["label_smoothing"]))
    per_epoch = int(p["n_samples"]) // int(p["batch_size"])
    early, every = int(p["early_epochs"]) * per_epoch, int(p["checkpoint_epochs"]) * per_epoch
    total = int(p["epochs"]) * per_epoch
    epoch_losses: list[float] = []
    checkpoints: dict[int, nn.Module] = {}

    def on_step(step: int) -> None:
        if step % per_epoch == 0:
            epoch_losses.append(full_loss(model, loss_fn, x, y))
        if step >= early and (step - early) % every == 0:
            checkpoints[step] = copy.deepcopy(model)

    sgd = {"lr": lr, "momentum": mu, "batch_size": int(p["batch_size"]), "seed": seed,
           "eval_every": total + 1, "on_step": on_step}
    if p["continue_with"] == "sgd":
        train(model, loss_fn, x, y, steps=total, **sgd)
    else:  # same SGD early phase, then full-batch GD for the same number of updates
        train(model, loss_fn, x, y, steps=early, **sgd)
        train(model, loss_fn, x, y, lr=lr, momentum=mu, steps=total - early,
              eval_every=total + 1, on_step=lambda s: on_step(early + s))
    loss_min = min(epoch_losses)
    with torch.no_grad():
        train_accuracy = accuracy(model(x), y)

    steps = sorted(checkpoints)
    projected, proj_steps, proj_loss, traces = [], [], [], []
    for s in steps:
        proj = checkpoints[s]
        res = train(proj, loss_fn, x, y, lr=lr, momentum=mu, steps=int(p["project_max_steps"]),
                    eval_every=1, target_loss=loss_min)
        projected.append(proj)
        proj_steps.append(res.steps)
        proj_loss.append(res.final_loss)
        traces.append(piecewise_linear_mlp_trace(proj, loss_fn, x, y))
    floor = smoothed_target_entropy(10, float(p["label_smoothing"]))
    excess_min = loss_min - floor
    ratios = [(max(segment_losses(a, b, loss_fn, x, y, int(p["connect_points"]))) - floor)
              / excess_min for a, b in zip(projected, projected[1:])]
    connected = [r < float(p["connect_excess_factor"]) for r in ratios]
    metrics: dict[str, Any] = {
        "steps": steps, "loss_min": loss_min, "loss_floor": floor, "epoch_losses": epoch_losses,
        "trace": traces,
        "trace_slope": stats.linear_fit([s / 1000.0 for s in steps], traces).slope,
        "trace_change": traces[-1] - traces[0], "projection_steps": proj_steps,
        "projection_loss": proj_loss,
        "not_projected": sum(not loss < loss_min for loss in proj_loss),
        "segment_max_excess_ratio": ratios,
        "line_connected_fraction": sum(connected) / len(connected),
        "train_accuracy": train_accuracy}
    return Measurement(metrics=metrics)
