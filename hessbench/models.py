"""The papers' small networks, seeded, plus torchvision architectures for benchmarks."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from hessbench.utils import seeded_generator

__all__ = ["mlp", "small_cnn", "resnet18", "reinitialize"]

_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu": nn.GELU,
                "linear": nn.Identity}


def reinitialize(model: nn.Module, seed: int) -> nn.Module:
    """Re-draw every Linear/Conv weight and bias from PyTorch's default law
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with a private generator (global RNG untouched)."""
    gen = seeded_generator(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d)):
                fan_in = module.weight[0].numel()
                bound = fan_in ** -0.5
                for p in (module.weight, module.bias):
                    if p is not None:
                        draw = torch.rand(p.shape, generator=gen, dtype=torch.float64)
                        p.copy_((2 * draw - 1) * bound)
    return model


def mlp(in_dim: int, hidden: Sequence[int], out_dim: int, *, activation: str = "relu",
        bias: bool = True, seed: int = 0, dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu") -> nn.Sequential:
    """Fully connected net ``in_dim -> hidden[0] -> ... -> out_dim`` (Linear/activation
    alternating, no activation after the last layer), seeded. ``activation="linear"``
    (nn.Identity) gives a deep linear network: a smooth model whose minima form
    degenerate valleys (W2 A^-1, A W1 for any invertible A)."""
    if activation not in _ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; choose one of {sorted(_ACTIVATIONS)}")
    sizes = [in_dim, *hidden, out_dim]
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b, bias=bias))
        if i < len(sizes) - 2:
            layers.append(_ACTIVATIONS[activation]())
    model = nn.Sequential(*layers)
    return reinitialize(model, seed).to(dtype=dtype, device=device)


def small_cnn(in_channels: int = 1, num_classes: int = 10, image_size: int = 8, *,
              channels: int = 8, seed: int = 0, dtype: torch.dtype = torch.float32,
              device: torch.device | str = "cpu") -> nn.Sequential:
    """LeNet-like convnet: conv3x3-ReLU-maxpool2, conv3x3-ReLU, linear head."""
    if image_size % 2:
        raise ValueError(f"image_size must be even, got {image_size}")
    model = nn.Sequential(
        nn.Conv2d(in_channels, channels, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(), nn.Flatten(),
        nn.Linear(channels * (image_size // 2) ** 2, num_classes),
    )
    return reinitialize(model, seed).to(dtype=dtype, device=device)


def resnet18(num_classes: int = 10, *, seed: int = 0, device: torch.device | str = "cpu") -> nn.Module:
    """torchvision's ResNet-18 (random weights, eval mode: BatchNorm uses running stats)."""
    import torchvision

    model = reinitialize(torchvision.models.resnet18(weights=None, num_classes=num_classes), seed)
    return model.eval().to(device)
