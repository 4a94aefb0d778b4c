"""Data sets used by the papers' experiments, all available offline.

* :func:`gaussian_clusters` -- k Gaussian clusters in R^d (Sagun et al. 2018, §3.1).
* :func:`digits` -- scikit-learn's bundled 8x8 digits (1797 images, ships offline);
  stands in for MNIST in the Wei & Schwab and Dinh et al. experiments.
* :func:`torchvision_dataset` -- MNIST / FashionMNIST / CIFAR-10 from a local root,
  never downloading.
* :func:`batches` -- split tensors into a list of (inputs, targets) batches.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from hessbench.utils import seeded_generator

__all__ = ["gaussian_clusters", "digits", "torchvision_dataset", "batches"]

Tensors = tuple[torch.Tensor, torch.Tensor]


def gaussian_clusters(num_classes: int, samples_per_class: int, dim: int = 100, *,
                      cluster_std: float = 1.0, centre_std: float = 1.0, seed: int = 0,
                      dtype: torch.dtype = torch.float32,
                      device: torch.device | str = "cpu") -> Tensors:
    """``num_classes`` Gaussian clusters in R^dim, normalised globally.

    Centres mu_c ~ N(0, centre_std^2 I); samples x = mu_c + cluster_std * N(0, I),
    ``cluster_std^2`` being the paper's "input covariance scale" (1 or 10, Sagun et al.
    §3.1). The whole set is then standardised with its global mean and standard
    deviation (one scalar), as in the paper. Returns ``(X, y)`` with the classes
    interleaved in a seeded random order.
    """
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    if samples_per_class < 1 or dim < 1:
        raise ValueError(f"samples_per_class and dim must be >= 1, got {samples_per_class}, {dim}")
    gen = seeded_generator(seed)
    centres = centre_std * torch.randn(num_classes, dim, generator=gen, dtype=torch.float64)
    labels = torch.arange(num_classes).repeat_interleave(samples_per_class)
    x = centres[labels] + cluster_std * torch.randn(labels.numel(), dim, generator=gen,
                                                     dtype=torch.float64)
    x = (x - x.mean()) / x.std()
    order = torch.randperm(labels.numel(), generator=gen)
    return x[order].to(dtype=dtype, device=device), labels[order].to(device)


def digits(num_samples: int | None = None, *, seed: int = 0, standardize: bool = True,
           fit_on: int | None = None, dtype: torch.dtype = torch.float32,
           device: torch.device | str = "cpu") -> Tensors:
    """scikit-learn's 8x8 digits (10 classes, 64 features), a seeded subset.

    ``standardize`` scales pixel values from [0, 16] to zero mean and unit variance
    per feature (constant features left at zero), with the mean and standard deviation
    of the first ``fit_on`` samples of the subset (default: all of it). Split the result
    as ``x[:fit_on]`` (train) / ``x[fit_on:]`` (test) so test samples do not leak into
    the statistics. ``num_samples=None`` keeps all 1797.
    """
    from sklearn.datasets import load_digits

    x_np, y_np = load_digits(return_X_y=True)
    if num_samples is not None:
        if not 1 <= num_samples <= len(y_np):
            raise ValueError(f"num_samples must be in [1, {len(y_np)}], got {num_samples}")
        idx = np.random.default_rng(seed).permutation(len(y_np))[:num_samples]
        x_np, y_np = x_np[idx], y_np[idx]
    fit_on = len(y_np) if fit_on is None else fit_on
    if not 2 <= fit_on <= len(y_np):
        raise ValueError(f"fit_on must be in [2, {len(y_np)}] (samples whose statistics "
                         f"standardise the set), got {fit_on}")
    x = torch.as_tensor(x_np, dtype=torch.float64)
    if standardize:
        ref = x[:fit_on]
        std = ref.std(dim=0)
        x = (x - ref.mean(dim=0)) / torch.where(std > 0, std, torch.ones_like(std))
    return x.to(dtype=dtype, device=device), torch.as_tensor(y_np, dtype=torch.long, device=device)


_TORCHVISION = {"mnist": "MNIST", "fashionmnist": "FashionMNIST", "cifar10": "CIFAR10"}


def torchvision_dataset(name: str, root: str | Path, *, train: bool = True):
    """A torchvision data set read from ``root``; never downloads.

    Raises ``FileNotFoundError`` saying where to put the files when they are absent.
    """
    key = name.lower().replace("-", "").replace("_", "")
    if key not in _TORCHVISION:
        raise ValueError(f"unknown data set {name!r}; choose one of {sorted(_TORCHVISION)}")
    import torchvision
    from torchvision import transforms

    cls = getattr(torchvision.datasets, _TORCHVISION[key])
    try:
        return cls(root=str(root), train=train, download=False, transform=transforms.ToTensor())
    except RuntimeError as err:
        raise FileNotFoundError(
            f"{_TORCHVISION[key]} files not found under {root!s}; hessbench never downloads. "
            f"Place the data set there (torchvision layout) or use hessbench.data.digits().") from err


def batches(inputs: torch.Tensor, targets: torch.Tensor, batch_size: int) -> list[Tensors]:
    """Consecutive ``(inputs, targets)`` batches; the last one may be smaller (ragged)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if len(inputs) != len(targets):
        raise ValueError(f"inputs and targets differ in length: {len(inputs)} vs {len(targets)}")
    return [(inputs[i:i + batch_size], targets[i:i + batch_size])
            for i in range(0, len(inputs), batch_size)]
