"""Fixed, seeded benchmark workloads, shared by the asv suites (``suites/``), the
PyHessian comparison, the CI gate and the README table, so every figure refers to the
same model, data and parameters:

* ``mlp``      -- ReLU MLP 100-30-30-10 (4270 parameters), cross-entropy on 1000
  Gaussian-cluster samples (10 classes x 100, d = 100), trained as in Sagun et al. 2018
  §3.1 (the recipe of the ``sagun-outliers`` smoke claim: SGD, lr 0.1, batch 32, 2000
  steps, seed 0), so its Hessian has the trained-network shape (positive outliers
  above a bulk) that the comparison with PyHessian is about.
* ``mlp-init`` -- the same net and data at its seeded initialisation (no training; the
  spectrum is nearly symmetric about 0 there).
* ``cnn``      -- LeNet-like small convnet (1954 parameters) on 1000 scikit-learn digits
  (1 x 8 x 8 images).
* ``resnet18`` -- torchvision ResNet-18 (10 classes, 11.2M parameters, eval mode) on one
  batch of 32 random N(0, 1) images of size 3 x 32 x 32 with random labels.

The reference cost of every time ratio is one full-data gradient by plain autograd
(:func:`gradient_fn`), or, for products that rebuild their graph, one plain double
backward (:func:`double_backward_fn`).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import hessbench as hb
from hessbench.data import batches, digits, gaussian_clusters
from hessbench.models import mlp, resnet18, small_cnn
from hessbench.problem import LossFn, trainable_parameters
from hessbench.training import train
from hessbench.utils import resolve_device, seeded_generator

__all__ = ["Workload", "WORKLOADS", "get_workload", "gradient_fn", "double_backward_fn"]


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
        return sum(p.numel() for p in trainable_parameters(self.model).values())

    @property
    def device(self) -> torch.device:
        return self.inputs.device

    def data(self, batch_size: int | None = None):
        """The whole set as one batch, or a list of ``batch_size`` batches (streamed)."""
        if batch_size is None:
            return (self.inputs, self.targets)
        return batches(self.inputs, self.targets, batch_size)

    def batch_list(self, batch_size: int | None = None) -> list:
        """:meth:`data` as a list of batches (one batch when ``batch_size`` is None), the
        form peers that take only iterables want."""
        return [self.data()] if batch_size is None else self.data(batch_size)

    def loader(self, batch_size: int) -> DataLoader:
        """The whole set through a DataLoader of ``batch_size`` batches, in order."""
        return DataLoader(TensorDataset(self.inputs, self.targets), batch_size=batch_size)

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


def gradient_fn(w: Workload, data=None) -> Callable[[], object]:
    """One full-data gradient by plain autograd (forward + backward), the reference cost;
    with ``data`` (an iterable of batches) one gradient per batch, as a streamed product
    pays for the same data (a list, a DataLoader)."""
    params = list(trainable_parameters(w.model).values())

    def one(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.autograd.grad(w.loss_fn(w.model(x), y), params)[0]

    if data is None:
        return lambda: one(w.inputs, w.targets)
    return lambda: [one(x, y) for x, y in data]


def double_backward_fn(w: Workload, data=None, seed: int = 0) -> Callable[[], object]:
    """One HVP by plain double backward (forward, backward with ``create_graph``, backward
    of g . v; Pearlmutter 1994) by autograd on the live model: on the whole set, or once per
    batch of ``data``. The cost floor of an HVP that rebuilds its graph, to which the
    from-scratch and streamed products are compared; v is the benchmarks' fixed random
    vector (seed 0, as :func:`hessbench.bench.impls.random_block`)."""
    params = list(trainable_parameters(w.model).values())
    flat = torch.randn(sum(p.numel() for p in params), generator=seeded_generator(seed),
                       dtype=params[0].dtype).to(w.device)
    v = [t.view_as(p) for t, p in zip(flat.split([p.numel() for p in params]), params)]

    def one(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
        g = torch.autograd.grad(w.loss_fn(w.model(x), y), params, create_graph=True)
        return torch.autograd.grad(g, params, v)

    listed = [w.data()] if data is None else data
    return lambda: [one(x, y) for x, y in listed]
