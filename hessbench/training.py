"""Deterministic, seeded full-batch GD and minibatch SGD loops.

Plain updates theta <- theta - lr * grad (no momentum, no weight decay), so the
dynamics are exactly the ones the papers analyse. Minibatches are drawn without
replacement within an epoch from a private generator.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from hessbench.utils import seeded_generator

__all__ = ["TrainResult", "train", "full_loss"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class TrainResult:
    """Training record: full-batch loss every ``eval_every`` steps, and why it stopped."""

    steps: int
    losses: list[float] = field(repr=False)
    final_loss: float
    stopped: str  # "max_steps" | "plateau" | "target_loss"


@torch.no_grad()
def full_loss(model: nn.Module, loss_fn: LossFn, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    """Training loss on the whole data set."""
    return float(loss_fn(model(inputs), targets))


def train(model: nn.Module, loss_fn: LossFn, inputs: torch.Tensor, targets: torch.Tensor, *,
          lr: float, steps: int, batch_size: int | None = None, seed: int = 0,
          eval_every: int = 100, plateau_rtol: float | None = None, patience: int = 5,
          target_loss: float | None = None) -> TrainResult:
    """Train ``model`` in place with GD (``batch_size=None``) or SGD.

    Stops after ``steps`` updates, or earlier when the full-batch loss improved by
    less than ``plateau_rtol`` (relative) over ``patience`` evaluations ("until the
    training loss stops improving", Sagun et al. §3.1), or when it falls below
    ``target_loss``.
    """
    if lr <= 0 or steps < 0:
        raise ValueError(f"lr must be > 0 and steps >= 0, got lr={lr}, steps={steps}")
    n = len(inputs)
    if n == 0:
        raise ValueError("empty training set: inputs has no samples")
    if batch_size is not None and not 1 <= batch_size <= n:
        raise ValueError(f"batch_size must be in [1, {n}] or None for GD, got {batch_size}")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no trainable parameters (all requires_grad=False)")
    gen = seeded_generator(seed, device=inputs.device)
    losses = [full_loss(model, loss_fn, inputs, targets)]
    order, cursor = None, n
    stopped = "max_steps"
    step = 0
    for step in range(1, steps + 1):
        if batch_size is None:
            xb, yb = inputs, targets
        else:
            if cursor + batch_size > n:
                order, cursor = torch.randperm(n, generator=gen, device=inputs.device), 0
            idx = order[cursor:cursor + batch_size]
            cursor += batch_size
            xb, yb = inputs[idx], targets[idx]
        loss = loss_fn(model(xb), yb)
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for p, g in zip(params, grads):
                p.sub_(lr * g)
        if step % eval_every == 0 or step == steps:
            losses.append(full_loss(model, loss_fn, inputs, targets))
            if not torch.isfinite(torch.tensor(losses[-1])):
                raise FloatingPointError(f"training diverged at step {step} (loss {losses[-1]}); "
                                         f"lower the learning rate (lr={lr})")
            if target_loss is not None and losses[-1] < target_loss:
                stopped = "target_loss"
                break
            if (plateau_rtol is not None and len(losses) > patience
                    and losses[-patience - 1] - losses[-1] < plateau_rtol * abs(losses[-patience - 1])):
                stopped = "plateau"
                break
    return TrainResult(steps=step, losses=losses, final_loss=losses[-1], stopped=stopped)
