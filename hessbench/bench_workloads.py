"""Fixed, seeded benchmark workloads and same-process timing helpers.

The workloads are defined once here and shared by the asv suites (``suites/``), the
PyHessian comparison, the CI gate and the README table, so every figure refers to
the same model, data and parameters:

* ``mlp``      -- ReLU MLP 100-30-30-10 (4270 parameters), cross-entropy on 1000
  Gaussian-cluster samples (10 classes x 100, d = 100), trained as in Sagun et al. 2018
  §3.1 (the recipe of the ``sagun-outliers`` smoke claim: SGD, lr 0.1, batch 32, 2000
  steps, seed 0), so its Hessian has the trained-network shape (positive outliers
  above a bulk) that the PyHessian figures of issue 2 refer to.
* ``mlp-init`` -- the same net and data at its seeded initialisation (no training; the
  spectrum is nearly symmetric about 0 there).
* ``cnn``      -- LeNet-like small convnet (1954 parameters) on 1000 scikit-learn digits
  (1 x 8 x 8 images).
* ``resnet18`` -- torchvision ResNet-18 (10 classes, 11.2M parameters, eval mode) on one
  batch of 32 random N(0, 1) images of size 3 x 32 x 32 with random labels.

Ratios are timed interleaved (a, b, a, b, ...), so that load drift on a shared machine
hits both sides alike, and compare the fastest samples (load only adds time).
"""
from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

import hessbench as hb
from hessbench.data import batches, digits, gaussian_clusters
from hessbench.models import mlp, resnet18, small_cnn
from hessbench.training import train
from hessbench.utils import resolve_device, seeded_generator

__all__ = ["Workload", "WORKLOADS", "get_workload", "gradient_fn", "hvp_fn", "time_call",
           "time_ratio", "Timing"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Workload:
    """A model, a mean-reduced loss and one data set: everything a benchmark needs."""

    name: str
    description: str
    model: nn.Module
    loss_fn: LossFn
    inputs: torch.Tensor
    targets: torch.Tensor
    stream_batch: int  # batch size of the streamed (data-loader) variant

    @property
    def num_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters() if p.requires_grad)

    @property
    def device(self) -> torch.device:
        return self.inputs.device

    def data(self, batch_size: int | None = None):
        """The whole set as one batch, or a list of ``batch_size`` batches (streamed)."""
        if batch_size is None:
            return (self.inputs, self.targets)
        return batches(self.inputs, self.targets, batch_size)

    def hessian(self, batch_size: int | None = None, **kwargs) -> hb.CurvatureOperator:
        """``hb.hessian`` of this workload (streamed over batches when ``batch_size``)."""
        return hb.hessian(self.model, self.loss_fn, self.data(batch_size), **kwargs)


def _mlp_init(device: torch.device) -> Workload:
    x, y = gaussian_clusters(10, 100, 100, seed=0, device=device)
    model = mlp(100, [30, 30], 10, seed=0, device=device)
    return Workload("mlp-init", "MLP 100-30-30-10 (4270 params) at initialisation, 1000 "
                    "Gaussian-cluster samples", model, nn.CrossEntropyLoss(), x, y, 100)


def _mlp(device: torch.device) -> Workload:
    w = _mlp_init(device)
    train(w.model, w.loss_fn, w.inputs, w.targets, lr=0.1, steps=2000, batch_size=32, seed=0,
          eval_every=2000)
    return Workload("mlp", "MLP 100-30-30-10 (4270 params) trained (SGD, 2000 steps), 1000 "
                    "Gaussian-cluster samples", w.model, w.loss_fn, w.inputs, w.targets, 100)


def _cnn(device: torch.device) -> Workload:
    x, y = digits(1000, seed=0, device=device)
    model = small_cnn(1, 10, 8, channels=8, seed=0, device=device)
    return Workload("cnn", "small CNN (1954 params), 1000 digits 1x8x8",
                    model, nn.CrossEntropyLoss(), x.reshape(-1, 1, 8, 8), y, 100)


def _resnet18(device: torch.device) -> Workload:
    gen = seeded_generator(0)
    x = torch.randn(32, 3, 32, 32, generator=gen).to(device)
    y = torch.randint(0, 10, (32,), generator=gen).to(device)
    model = resnet18(10, seed=0, device=device)
    return Workload("resnet18", "torchvision ResNet-18 (11.2M params), batch 32 of 3x32x32 "
                    "random images", model, nn.CrossEntropyLoss(), x, y, 8)


WORKLOADS: dict[str, Callable[[torch.device], Workload]] = {
    "mlp": _mlp, "mlp-init": _mlp_init, "cnn": _cnn, "resnet18": _resnet18}


def get_workload(name: str, device: torch.device | str = "cpu") -> Workload:
    """Build the named workload (fresh model and data, same seeds every time)."""
    if name not in WORKLOADS:
        raise ValueError(f"unknown workload {name!r}; choose one of {sorted(WORKLOADS)}")
    return WORKLOADS[name](resolve_device(device))


def gradient_fn(w: Workload) -> Callable[[], torch.Tensor]:
    """One full-data gradient by plain autograd (forward + backward), the reference cost."""
    params = [p for p in w.model.parameters() if p.requires_grad]

    def run() -> torch.Tensor:
        loss = w.loss_fn(w.model(w.inputs), w.targets)
        return torch.autograd.grad(loss, params)[0]

    return run


def hvp_fn(op: hb.CurvatureOperator, block: int = 1, seed: int = 0) -> Callable[[], torch.Tensor]:
    """One product with a fixed random block of ``block`` vectors (``block=1``: matvec)."""
    V = torch.randn(op.num_params, block, generator=seeded_generator(seed), dtype=op.dtype)
    V = V.to(op.device)
    if block == 1:
        v = V[:, 0]
        return lambda: op.matvec(v)
    return lambda: op.matmat(V)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass(frozen=True)
class Timing:
    """Seconds per call: one sample per repeat (each the mean of ``number`` calls)."""

    samples: tuple[float, ...]
    number: int = 1

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def min(self) -> float:
        return min(self.samples)


def _sample(fn: Callable[[], object], number: int, device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(number):
        fn()
    _sync(device)
    return (time.perf_counter() - t0) / number


def _calls_per_sample(fn: Callable[[], object], min_sample: float,
                      device: torch.device) -> int:
    """Calls per sample so that one sample lasts about ``min_sample`` seconds."""
    once = _sample(fn, 1, device)   # doubles as the warm-up call
    return max(1, math.ceil(min_sample / max(once, 1e-9)))


def time_call(fn: Callable[[], object], repeats: int = 5, warmup: int = 1,
              device: torch.device | str = "cpu", min_sample: float = 0.0) -> Timing:
    """``repeats`` samples of ``fn()`` after ``warmup`` calls; each sample averages enough
    calls to last ``min_sample`` seconds (one call when 0)."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    device = torch.device(device)
    for _ in range(warmup):
        fn()
    number = _calls_per_sample(fn, min_sample, device) if min_sample > 0 else 1
    return Timing(tuple(_sample(fn, number, device) for _ in range(repeats)), number)


def time_ratio(numerator: Callable[[], object], denominator: Callable[[], object],
               repeats: int = 5, warmup: int = 1, device: torch.device | str = "cpu",
               min_sample: float = 0.02, stat: str = "min"
               ) -> tuple[float, Timing, Timing]:
    """time(numerator) / time(denominator), sampled interleaved (a, b, a, b, ...) in one
    process; each sample lasts at least ``min_sample`` s.

    ``stat="min"`` (default) compares the fastest samples: load on a shared machine only
    ever adds time, so the minimum is the least disturbed estimate; ``"median"`` is the
    alternative.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    if stat not in ("min", "median"):
        raise ValueError(f"stat must be 'min' or 'median', got {stat!r}")
    device = torch.device(device)
    for _ in range(warmup):
        numerator()
        denominator()
    na = _calls_per_sample(numerator, min_sample, device)
    nb = _calls_per_sample(denominator, min_sample, device)
    a, b = [], []
    for _ in range(repeats):
        a.append(_sample(numerator, na, device))
        b.append(_sample(denominator, nb, device))
    ta, tb = Timing(tuple(a), na), Timing(tuple(b), nb)
    return getattr(ta, stat) / getattr(tb, stat), ta, tb
