"""Small shared helpers: seeded generators and device resolution."""
from __future__ import annotations

import numbers

import torch

__all__ = ["seeded_generator", "resolve_device"]


def seeded_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A fresh ``torch.Generator`` on ``device`` seeded with ``seed``.

    Every stochastic routine in hessbench draws from its own generator so that
    results never depend on (or disturb) the global RNG.
    """
    if not isinstance(seed, numbers.Integral) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}; pass e.g. seed=0")
    gen = torch.Generator(device=torch.device(device))
    gen.manual_seed(int(seed))
    return gen


def resolve_device(device: torch.device | str | None = "auto") -> torch.device:
    """Map ``"auto"``/``None`` to cuda when available (else cpu); validate the rest."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but torch.cuda.is_available() is False; "
                         "use device='cpu' or 'auto'")
    return dev
