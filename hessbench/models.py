"""The papers' small networks, seeded, plus torchvision architectures for benchmarks."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from hessbench.utils import seeded_generator

__all__ = ["mlp", "small_cnn", "resnet18", "reinitialize", "WeightNormLinear", "weight_normalise"]

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


class WeightNormLinear(nn.Module):
    """Weight-normalised Linear layer, w_i = g_i v_i / ||v_i||_2 per output unit i
    (Salimans & Kingma 2016): parameters ``v`` (out x in), ``g`` (out), ``bias`` (out).
    w is invariant to v -> alpha v for any alpha != 0 (Dinh et al. 2017, §5)."""

    def __init__(self, v: torch.Tensor, g: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__()
        if v.ndim != 2 or g.shape != (v.shape[0],):
            raise ValueError(f"need v (out, in) and g (out,), got {tuple(v.shape)}, "
                             f"{tuple(g.shape)}")
        self.v = nn.Parameter(v.detach().clone())
        self.g = nn.Parameter(g.detach().clone())
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.g[:, None] * self.v / torch.linalg.vector_norm(self.v, dim=1, keepdim=True)
        return nn.functional.linear(x, w, self.bias)


def weight_normalise(model: nn.Sequential) -> nn.Sequential:
    """A copy of ``model`` with every nn.Linear replaced by the same function as a
    :class:`WeightNormLinear` (v = W, g = row norms of W, same bias)."""
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"weight_normalise needs an nn.Sequential, got {type(model).__name__}")
    out = []
    for m in model:
        if isinstance(m, nn.Linear):
            out.append(WeightNormLinear(m.weight, torch.linalg.vector_norm(m.weight, dim=1),
                                        m.bias))
        else:
            out.append(m)
    return nn.Sequential(*out)


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
