"""Deterministic, seeded full-batch GD and minibatch SGD loops.

Plain updates theta <- theta - lr * grad by default (no weight decay), so the dynamics are
exactly the ones the papers analyse; ``momentum`` mu > 0 gives heavy-ball updates in
PyTorch's convention, v <- mu v + grad, theta <- theta - lr v (v = 0 at the start).
Minibatches are drawn without replacement within an epoch from a private generator.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import nn

from hessbench.problem import Batch, LossFn, trainable_parameters
from hessbench.results import TrainResult
from hessbench.utils import seeded_generator

__all__ = ["train", "full_loss", "accuracy"]


@torch.no_grad()
def full_loss(model: nn.Module, loss_fn: LossFn, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    """Training loss on the whole data set."""
    return float(loss_fn(model(inputs), targets))


def accuracy(outputs: torch.Tensor, targets: torch.Tensor) -> float:
    """Fraction of samples whose largest output (logit) is at their class label."""
    return float((outputs.argmax(1) == targets).double().mean())


def train(model: nn.Module, loss_fn: LossFn, inputs: torch.Tensor, targets: torch.Tensor, *,
          lr: float, steps: int, batch_size: int | None = None, seed: int = 0,
          eval_every: int = 100, plateau_rtol: float | None = None, patience: int = 5,
          target_loss: float | None = None, momentum: float = 0.0,
          on_step: Callable[[int], None] | None = None) -> TrainResult:
    """Train ``model`` in place with GD (``batch_size=None``) or SGD, with optional
    heavy-ball ``momentum`` (module doc).

    Stops after ``steps`` updates, or earlier when the full-batch loss improved by
    less than ``plateau_rtol`` (relative) over ``patience`` evaluations ("until the
    training loss stops improving", Sagun et al. §3.1), or when it falls below
    ``target_loss`` (also checked before the first step). ``on_step(step)`` is called
    after every update (checkpoints along one continuous path).
    """
    if lr <= 0 or steps < 0:
        raise ValueError(f"lr must be > 0 and steps >= 0, got lr={lr}, steps={steps}")
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"momentum must be in [0, 1), got {momentum}")
    n = len(inputs)
    if n == 0:
        raise ValueError("empty training set: inputs has no samples")
    if batch_size is not None and not 1 <= batch_size <= n:
        raise ValueError(f"batch_size must be in [1, {n}] or None for GD, got {batch_size}")
    params = list(trainable_parameters(model).values())
    draws = _minibatches(inputs, targets, batch_size, seeded_generator(seed, device=inputs.device))
    losses = [full_loss(model, loss_fn, inputs, targets)]
    stopped = _stop_reason(losses, target_loss, None, patience)
    velocity = [torch.zeros_like(p) for p in params] if momentum else []
    step = 0
    for step in range(1, steps + 1 if stopped == "max_steps" else 1):
        xb, yb = next(draws)
        loss = loss_fn(model(xb), yb)
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            if momentum:
                for v, g in zip(velocity, grads):
                    v.mul_(momentum).add_(g)
                grads = velocity
            for p, g in zip(params, grads):
                p.sub_(lr * g)
        if on_step is not None:
            on_step(step)
        if step % eval_every == 0 or step == steps:
            losses.append(full_loss(model, loss_fn, inputs, targets))
            if not torch.isfinite(torch.tensor(losses[-1])):
                raise FloatingPointError(f"training diverged at step {step} (loss {losses[-1]}); "
                                         f"lower the learning rate (lr={lr})")
            stopped = _stop_reason(losses, target_loss, plateau_rtol, patience)
            if stopped != "max_steps":
                break
    return TrainResult(steps=step, losses=losses, final_loss=losses[-1], stopped=stopped)


def _minibatches(inputs: torch.Tensor, targets: torch.Tensor, batch_size: int | None,
                 gen: torch.Generator) -> Iterator[Batch]:
    """The whole set forever (GD), or batches of ``batch_size`` drawn without replacement
    within an epoch, a fresh permutation from ``gen`` whenever the epoch cannot fill one."""
    n = len(inputs)
    order, cursor = None, n
    while True:
        if batch_size is None:
            yield inputs, targets
            continue
        if cursor + batch_size > n:
            order, cursor = torch.randperm(n, generator=gen, device=inputs.device), 0
        idx = order[cursor:cursor + batch_size]
        cursor += batch_size
        yield inputs[idx], targets[idx]


def _stop_reason(losses: list[float], target_loss: float | None, plateau_rtol: float | None,
                 patience: int) -> str:
    """"target_loss" below the target, "plateau" when the loss improved by less than
    ``plateau_rtol`` (relative) over the last ``patience`` evaluations, else "max_steps"."""
    if target_loss is not None and losses[-1] < target_loss:
        return "target_loss"
    if (plateau_rtol is not None and len(losses) > patience
            and losses[-patience - 1] - losses[-1] < plateau_rtol * abs(losses[-patience - 1])):
        return "plateau"
    return "max_steps"
