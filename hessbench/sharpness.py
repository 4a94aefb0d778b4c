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

References: Keskar, Mudigere, Nocedal, Smelyanskiy & Tang, ICLR 2017, Eqs. (3)-(4).
"""
from __future__ import annotations

import torch
from torch import nn

from hessbench.problem import LossFn, ModePolicy, Problem
from hessbench.results import SharpnessResult
from hessbench.utils import seeded_generator

__all__ = ["epsilon_sharpness"]


def epsilon_sharpness(model: nn.Module, loss_fn: LossFn,
                      data: tuple[torch.Tensor, torch.Tensor], epsilon: float = 1e-3, *,
                      steps: int = 20, restarts: int = 1, step_size: float | None = None,
                      seed: int = 0, mode: ModePolicy = "error") -> SharpnessResult:
    """Keskar et al.'s epsilon-sharpness (Eq. 3, full space A = I) of ``model`` at its
    current parameters, as a lower bound from projected sign-gradient ascent.

    ``data`` is one ``(inputs, targets)`` batch; ``loss_fn(outputs, targets)`` the mean
    loss. theta is the trainable parameters (:class:`~hessbench.problem.Problem`, whose
    ``mode`` policy applies to BatchNorm/Dropout in train mode). ``step_size`` is the
    step as a fraction of the box half-width (default 2.5 / steps, so one run can cross
    the box). The model is not modified.
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
    prob = Problem(model, loss_fn, tuple(data), mode=mode)
    with prob.mode_context():
        base, best = _ascent(prob, epsilon, steps, restarts, eta, seed)
    return SharpnessResult(value=100.0 * (best - base) / (1.0 + base), loss=base, max_loss=best,
                           epsilon=float(epsilon), steps=steps, restarts=restarts)


def _ascent(prob: Problem, epsilon: float, steps: int, restarts: int, eta: float,
            seed: int) -> tuple[float, float]:
    """(L(theta), the largest L(theta + delta) seen) over ``restarts`` runs of ``steps``
    projected sign-gradient steps from uniform random starts in the box."""
    x, y = next(iter(prob.batches()))
    theta = prob.params
    widths = {k: epsilon * (t.abs() + 1) for k, t in theta.items()}

    def loss_at(deltas: dict[str, torch.Tensor]) -> torch.Tensor:
        return prob.loss({k: theta[k] + deltas[k] for k in prob.names}, x, y)

    with torch.no_grad():
        base = float(loss_at({k: torch.zeros_like(t) for k, t in theta.items()}))
    best = base
    gen = seeded_generator(seed, device=prob.device)
    for _ in range(restarts):
        deltas = {k: (2 * torch.rand(w.shape, generator=gen, dtype=w.dtype, device=w.device) - 1)
                  * w for k, w in widths.items()}
        for step in range(steps + 1):
            deltas = {k: d.requires_grad_(True) for k, d in deltas.items()}
            value = loss_at(deltas)
            best = max(best, float(value.detach()))
            if step == steps:
                break
            grads = torch.autograd.grad(value, list(deltas.values()))
            with torch.no_grad():
                deltas = {k: torch.clamp(d + eta * widths[k] * g.sign(), -widths[k], widths[k])
                          for (k, d), g in zip(deltas.items(), grads)}
    return base, best
