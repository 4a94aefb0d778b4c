"""A tiny built-in experiment used to test the claims engine (not from a paper).

It draws ``n_points`` noisy points of the line y = slope * x + intercept on
x in [0, 1] and a Bernoulli sample for two success probabilities, all from a
generator seeded with ``seed`` on ``device``. Every expectation relation of the
engine has a metric here to act on.
"""
from __future__ import annotations

from typing import Any

import torch

from hessbench import stats
from hessbench.experiments.registry import Measurement, experiment
from hessbench.utils import seeded_generator

DEFAULTS: dict[str, Any] = {"slope": 1.0, "intercept": 0.0, "noise": 0.0, "n_points": 11,
                            "p_a": 0.5, "p_b": 0.5, "trials": 100}

METRICS = ["x", "y", "slope_hat", "intercept_hat", "y_first", "y_mid", "y_last",
           "residuals", "residual_mean", "hits_a", "hits_b", "trials", "seed"]


def plot_line(records: list[dict[str, Any]]) -> Any:
    """Scatter y against x per grid point and seed, with the fitted line."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 3.5))
    ax = fig.add_subplot()
    for rec in records:
        x, m = rec["figure_data"]["x"], rec["metrics"]
        label = f"{rec['point'] or 'base'}, seed {rec['seed']}"
        ax.scatter(x, m["y"], s=8, label=label)
        ax.plot([x[0], x[-1]], [m["intercept_hat"], m["intercept_hat"] + m["slope_hat"] * x[-1]],
                lw=1)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title("example_line: noisy line and least-squares fit")
    if len(records) <= 8:
        ax.legend(fontsize=6)
    return fig


@experiment("example_line", figure=plot_line, metrics=METRICS, defaults=DEFAULTS)
def example_line(p: dict[str, Any], seed: int, device: torch.device) -> Measurement:
    """Noisy line y = slope x + intercept + noise * N(0, 1) and Bernoulli counts."""
    gen = seeded_generator(seed, device)
    x = torch.linspace(0.0, 1.0, int(p["n_points"]), dtype=torch.float64, device=device)
    residuals = p["noise"] * torch.randn(x.shape, generator=gen, dtype=torch.float64,
                                         device=device)
    y = p["slope"] * x + p["intercept"] + residuals
    fit = stats.linear_fit(x.cpu().tolist(), y.cpu().tolist(), min_points=2)
    trials = int(p["trials"])
    u = torch.rand((2, trials), generator=gen, dtype=torch.float64, device=device)
    hits = (u < torch.tensor([[p["p_a"]], [p["p_b"]]], dtype=torch.float64, device=device)).sum(1)
    y_list = y.cpu().tolist()
    metrics = {
        "x": x.cpu().tolist(), "y": y_list,
        "slope_hat": fit.slope, "intercept_hat": fit.intercept,
        "y_first": y_list[0], "y_mid": y_list[len(y_list) // 2], "y_last": y_list[-1],
        "residuals": residuals.cpu().tolist(), "residual_mean": residuals.mean().item(),
        "hits_a": int(hits[0]), "hits_b": int(hits[1]), "trials": trials, "seed": seed,
    }
    return Measurement(metrics=metrics, figure_data={"x": metrics["x"]})
