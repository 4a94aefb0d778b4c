"""HVP cost against model size and against data size, for hessbench and every installed
peer, and the figure of both (``hessbench bench table`` writes it as a PNG).

* against the parameter count: one HVP on the whole set of each workload (each
  implementation's default: hessbench and PyHessian keep the gradient's graph,
  curvlinops and hessian-eigenthings rebuild it) over one full-data gradient;
* against the number of samples: the MLP on :data:`SIZES` Gaussian-cluster samples in
  batches of :data:`SCALING_BATCH` (every implementation streams), one HVP over the
  batch gradients on the same batches.

Each ratio's two sides are timed interleaved in one process
(:func:`hessbench.bench.timing.time_ratio`, the fastest of ``repeats`` samples).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from hessbench.bench.impls import Call
from hessbench.bench.peers import IMPLEMENTATIONS
from hessbench.bench.timing import time_ratio
from hessbench.bench.workloads import Workload, get_workload, gradient_fn
from hessbench.data import gaussian_clusters

__all__ = ["SIZES", "SCALING_BATCH", "ScalingPoint", "measure_scaling", "plot_scaling"]

SIZES = (2000, 10000, 50000)   # samples of the data-size axis
SCALING_BATCH = 1000           # batch size of the data-size axis


@dataclasses.dataclass(frozen=True)
class ScalingPoint:
    """One implementation's HVP / gradient at one point of one axis
    ("params": x = parameter count; "samples": x = number of samples)."""

    impl: str
    axis: str
    x: int
    ratio: float


def _hvps(w: Workload, batch_size: int | None) -> dict[str, Call]:
    """Each installed implementation's HVP on ``w`` (skipping what one lacks)."""
    out = {}
    for name, cls in IMPLEMENTATIONS.items():
        if not cls.available():
            continue
        impl = cls()
        try:
            out[name] = impl.hvp(impl.prepare(w, batch_size))
        except NotImplementedError:
            continue
    return out


def measure_scaling(device: torch.device | str = "cpu", repeats: int = 5,
                    workloads: tuple[str, ...] = ("mlp", "cnn", "resnet18"),
                    sizes: tuple[int, ...] = SIZES, batch_size: int = SCALING_BATCH
                    ) -> list[ScalingPoint]:
    """The points of both axes (see the module docstring)."""
    points = []

    def ratio(num: Call, den: Call, reps: int) -> float:
        return time_ratio(num, den, repeats=reps, device=device)[0]

    for name in workloads:
        w = get_workload(name, device)
        reps = max(1, repeats // 2) if name == "resnet18" else repeats
        points += [ScalingPoint(impl, "params", w.num_params, ratio(hvp, gradient_fn(w), reps))
                   for impl, hvp in _hvps(w, None).items()]
    base = get_workload("mlp-init", device)
    for n in sizes:
        x, y = gaussian_clusters(10, n // 10, base.inputs.shape[1], seed=1, device=device)
        w = dataclasses.replace(base, inputs=x, targets=y)
        grads = gradient_fn(w, w.data(batch_size))
        points += [ScalingPoint(impl, "samples", len(x), ratio(hvp, grads, repeats))
                   for impl, hvp in _hvps(w, batch_size).items()]
    return points


def plot_scaling(points: list[ScalingPoint], path: str | Path) -> Path:
    """Write the two panels (HVP / gradient against parameters and against samples, one
    line per implementation, log x) to ``path`` (PNG); returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    labels = {"params": "parameters (one batch: the whole set)",
              "samples": f"samples (MLP, batches of {SCALING_BATCH})"}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, axis in zip(axes, ("params", "samples")):
        for impl in dict.fromkeys(p.impl for p in points):
            pts = sorted((p.x, p.ratio) for p in points if p.impl == impl and p.axis == axis)
            if pts:
                ax.plot(*zip(*pts), marker="o", label=impl)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())   # the minor labels overlap
        ax.set_xlabel(labels[axis])
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("one HVP / one gradient (same data)")
    axes[0].legend()
    fig.suptitle("HVP cost relative to a gradient, interleaved in one process")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
