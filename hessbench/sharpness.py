"""Epsilon-sharpness of Keskar et al. (2017), approximated by projected sign-gradient ascent.

Keskar, Mudigere, Nocedal, Smelyanskiy & Tang, "On Large-Batch Training for Deep
Learning: Generalization Gap and Sharp Minima" (ICLR 2017), Eqs. (3)-(4) with A = I_n:

    C_eps = { delta : |delta_i| <= eps (|theta_i| + 1) }                       (4)
    phi(theta, eps) = 100 (max_{delta in C_eps} L(theta + delta) - L(theta)) / (1 + L(theta))  (3)

Keskar et al. solve the inner maximisation approximately (a few L-BFGS-B iterations).
Here it is approximated by projected sign-gradient ascent in the box (the steepest-ascent
step for the box geometry): delta <- clip(delta + eta * w * sign(grad), -w, w), with
w = eps (|theta| + 1), from ``restarts`` uniform random starts drawn from a seeded
generator, keeping the best loss seen (and L(theta) itself). The result is therefore a
LOWER BOUND on phi: the true maximum of a non-concave loss over the box may be larger.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call

from hessbench.utils import seeded_generator

__all__ = ["SharpnessResult", "epsilon_sharpness"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class SharpnessResult:
    """phi (percent, a lower bound), the losses it compares, and the search budget."""

    value: float
    loss: float
    max_loss: float
    epsilon: float
    steps: int
    restarts: int


def epsilon_sharpness(model: nn.Module, loss_fn: LossFn,
                      data: tuple[torch.Tensor, torch.Tensor], epsilon: float = 1e-3, *,
                      steps: int = 20, restarts: int = 1, step_size: float | None = None,
                      seed: int = 0) -> SharpnessResult:
    """Keskar et al.'s epsilon-sharpness (Eq. 3, full space A = I) of ``model`` at its
    current parameters, as a lower bound from projected sign-gradient ascent.

    ``data`` is one ``(inputs, targets)`` batch; ``loss_fn(outputs, targets)`` the mean
    loss. ``step_size`` is the step as a fraction of the box half-width (default
    2.5 / steps, so one run can cross the box). The model is not modified.
    """
    if not (isinstance(data, (tuple, list)) and len(data) == 2
            and all(isinstance(t, torch.Tensor) for t in data)):
        raise TypeError("data must be one (inputs, targets) pair of tensors")
    if not epsilon > 0:
        raise ValueError(f"epsilon must be > 0, got {epsilon} (Keskar et al. use 1e-3 and 5e-4)")
    if steps < 1 or restarts < 1:
        raise ValueError(f"steps and restarts must be >= 1, got steps={steps}, restarts={restarts}")
    eta = 2.5 / steps if step_size is None else float(step_size)
    if not eta > 0:
        raise ValueError(f"step_size must be > 0, got {step_size}")
    inputs, targets = data
    names = [n for n, p in model.named_parameters()]
    theta = [p.detach() for p in model.parameters()]
    if not theta:
        raise ValueError("model has no parameters")
    widths = [epsilon * (t.abs() + 1) for t in theta]

    def loss_at(deltas: list[torch.Tensor]) -> torch.Tensor:
        params = {n: t + d for n, t, d in zip(names, theta, deltas)}
        return loss_fn(functional_call(model, params, (inputs,)), targets)

    with torch.no_grad():
        base = float(loss_at([torch.zeros_like(t) for t in theta]))
    best = base
    gen = seeded_generator(seed, device=theta[0].device)
    for _ in range(restarts):
        deltas = [(2 * torch.rand(w.shape, generator=gen, dtype=w.dtype, device=w.device) - 1) * w
                  for w in widths]
        for step in range(steps + 1):
            deltas = [d.requires_grad_(True) for d in deltas]
            value = loss_at(deltas)
            best = max(best, float(value.detach()))
            if step == steps:
                break
            grads = torch.autograd.grad(value, deltas)
            with torch.no_grad():
                deltas = [torch.clamp(d + eta * w * g.sign(), -w, w)
                          for d, w, g in zip(deltas, widths, grads)]
    return SharpnessResult(value=100.0 * (best - base) / (1.0 + base), loss=base, max_loss=best,
                           epsilon=float(epsilon), steps=steps, restarts=restarts)
