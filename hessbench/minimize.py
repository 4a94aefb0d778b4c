"""Full-batch minimisation to a stated gradient norm: L-BFGS, then Newton-CG polishing.

Papers speak of Hessians "at a minimum"; a fixed number of GD steps only gets close
(the gradient left over keeps moving the parameters and the curvature). ``minimize``
drives the Euclidean norm ||grad L(theta)||_2 of the whole-training-set loss below
``grad_tol`` and says whether it got there:

1. ``torch.optim.LBFGS`` with a strong-Wolfe line search (Nocedal & Wright 2006,
   Alg. 7.4 and 3.5), for descent from afar. Its line search compares loss values, so it
   stalls once the remaining decrease ~ ||g||^2 / lambda falls below the loss's rounding
   error, i.e. at ||g|| ~ sqrt(lambda * eps * |L|) (about 1e-8 for L ~ 0.5, lambda ~ 1 in
   float64); torch also skips curvature pairs with y^T s <= 1e-10.
2. Newton-CG polishing (N&W Alg. 7.1): d solves H d = -g by conjugate gradients with exact
   Hessian-vector products (:func:`hessbench.hessian`) to the relative residual
   min(0.5, sqrt(||g||)) (superlinear convergence), truncated at negative curvature; the
   step theta + t d, t = 1, 1/2, ..., is accepted when the gradient norm decreases and the
   loss does not rise above its rounding error. This uses gradients, not loss
   differences, so it reaches tolerances below the line-search floor near a smooth minimum.

Use float64 parameters for tolerances much below ~1e-4. At a non-smooth minimum (e.g. a
ReLU network with samples on a kink) the gradient does not vanish and both stages end
unconverged; the result says so.

References: Nocedal & Wright, "Numerical Optimization", 2nd ed. (2006), Alg. 3.5 (strong
Wolfe line search), 7.1 (line-search Newton-CG), 7.4 (L-BFGS two-loop recursion).
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from hessbench.convergence import OnUnconverged, check_policy, report_unconverged
from hessbench.operators import hessian
from hessbench.problem import LossFn, flatten, trainable_parameters
from hessbench.results import MinimizeResult

__all__ = ["minimize", "grad_norm"]

_EVALS_PER_ITER = 3  # loss evaluations per L-BFGS iteration, on average over a block
_HALVINGS = 30  # Newton step lengths tried: 1, 1/2, ..., 2^-29


def _loss_and_grad(model: nn.Module, loss_fn: LossFn, inputs: torch.Tensor,
                   targets: torch.Tensor) -> tuple[float, torch.Tensor]:
    """L and the flat gradient over the live trainable parameters, by autograd."""
    params = list(trainable_parameters(model).values())
    with torch.enable_grad():   # callers may sit in a no_grad region
        loss = loss_fn(model(inputs), targets)
        grads = torch.autograd.grad(loss, params)
    return float(loss.detach()), flatten(grads)


def grad_norm(model: nn.Module, loss_fn: LossFn, inputs: torch.Tensor,
              targets: torch.Tensor) -> tuple[float, float]:
    """``(L, ||grad L||_2)`` on the whole data set, over the trainable parameters."""
    loss, g = _loss_and_grad(model, loss_fn, inputs, targets)
    return loss, float(g.norm())


def _lbfgs(model: nn.Module, loss_fn: LossFn, inputs: torch.Tensor, targets: torch.Tensor,
           grad_tol: float, max_iter: int, history_size: int,
           check_every: int) -> tuple[int, bool]:
    """Stage 1: L-BFGS in blocks of ``check_every`` iterations (the curvature pairs are
    kept between blocks) until ||g|| <= grad_tol, a stall, or ``max_iter`` iterations'
    worth of blocks; returns (iterations, stalled). A block may spend at most
    ``_EVALS_PER_ITER`` loss evaluations per iteration (a line search that needs more,
    e.g. across a kink, ends the block early), so the cost is bounded by about
    ``_EVALS_PER_ITER * max_iter`` evaluations. A block that ends early restarts from
    -grad once; a second early end without a loss decrease is a stall. A block that ends
    at a non-finite loss is undone and counts as ending early."""
    params = list(trainable_parameters(model).values())
    opt = torch.optim.LBFGS(params, lr=1.0, max_iter=check_every,
                            max_eval=_EVALS_PER_ITER * check_every, tolerance_grad=0.0,
                            tolerance_change=0.0, history_size=history_size,
                            line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(inputs), targets)
        loss.backward()
        return loss

    loss, norm = grad_norm(model, loss_fn, inputs, targets)
    iterations, budget_used, restarted, stalled = 0, 0, False, False
    try:
        while norm > grad_tol and budget_used < max_iter:
            block = min(check_every, max_iter - budget_used)
            budget_used += block
            opt.param_groups[0].update(max_iter=block, max_eval=_EVALS_PER_ITER * block)
            before = opt.state[params[0]].get("n_iter", 0)
            theta = parameters_to_vector(params).detach().clone()
            opt.step(closure)
            done = opt.state[params[0]].get("n_iter", 0) - before
            iterations += done
            previous = (loss, norm)
            loss, norm = grad_norm(model, loss_fn, inputs, targets)
            if not (math.isfinite(loss) and math.isfinite(norm)):  # e.g. the line search's
                with torch.no_grad():                              # interpolation at a kink
                    vector_to_parameters(theta, params)
                (loss, norm), done = previous, 0
            if done < block and norm > grad_tol:
                if restarted and not loss < previous[0]:
                    stalled = True
                    break
                opt.state.clear()  # drop the curvature pairs, restart from -grad
                restarted = True
            else:
                restarted = False
    finally:
        opt.zero_grad(set_to_none=True)
    return iterations, stalled


def _truncated_cg(matvec: Callable[[torch.Tensor], torch.Tensor], g: torch.Tensor,
                  rtol: float, max_products: int) -> tuple[torch.Tensor, int]:
    """Approximate solution of H d = -g by CG from d = 0, stopped at ||H d + g|| <= rtol ||g||,
    at the first direction of non-positive curvature (then the last iterate, or -g if
    there is none) or after ``max_products`` products; returns (d, products used)."""
    d = torch.zeros_like(g)
    r, p = g.clone(), -g
    rr = float(r @ r)
    for j in range(max_products):
        hp = matvec(p)
        curvature = float(p @ hp)
        if curvature <= 0:
            return (d if j else -g), j + 1
        alpha = rr / curvature
        d += alpha * p
        r += alpha * hp
        rr_new = float(r @ r)
        if math.sqrt(rr_new) <= rtol * math.sqrt(float(g @ g)):
            return d, j + 1
        p = -r + (rr_new / rr) * p
        rr = rr_new
    return d, max_products


def _newton_cg(model: nn.Module, loss_fn: LossFn, inputs: torch.Tensor, targets: torch.Tensor,
               grad_tol: float, max_steps: int, cg_max_iter: int) -> tuple[int, int, bool]:
    """Stage 2: Newton-CG steps until ||g|| <= grad_tol or ``max_steps``; returns
    (steps taken, Hessian-vector products, stalled)."""
    named = trainable_parameters(model)
    params = list(named.values())
    loss, g = _loss_and_grad(model, loss_fn, inputs, targets)
    steps = hvps = 0
    while float(g.norm()) > grad_tol and steps < max_steps:
        op = hessian(model, loss_fn, (inputs, targets), params=list(named))
        d, used = _truncated_cg(op.matvec, g, min(0.5, math.sqrt(float(g.norm()))), cg_max_iter)
        hvps += used
        theta = parameters_to_vector(params).detach()
        slack = 64 * torch.finfo(g.dtype).eps * max(1.0, abs(loss))
        for k in range(_HALVINGS):
            with torch.no_grad():
                vector_to_parameters(theta + 0.5 ** k * d, params)
            new_loss, new_g = _loss_and_grad(model, loss_fn, inputs, targets)
            if new_g.norm() < g.norm() and new_loss <= loss + slack:
                loss, g = new_loss, new_g
                break
        else:
            with torch.no_grad():
                vector_to_parameters(theta, params)
            return steps, hvps, True
        steps += 1
    return steps, hvps, False


def minimize(model: nn.Module, loss_fn: LossFn, inputs: torch.Tensor, targets: torch.Tensor,
             *, grad_tol: float, max_iter: int = 1000, newton_max_steps: int = 10,
             cg_max_iter: int = 200, history_size: int = 50, check_every: int = 10,
             on_unconverged: OnUnconverged = "warn") -> MinimizeResult:
    """Minimise the full-batch loss of ``model`` in place until ||grad L||_2 <= ``grad_tol``.

    At most ``max_iter`` L-BFGS iterations, then, if the tolerance is not met, at most
    ``newton_max_steps`` Newton-CG steps of at most ``cg_max_iter`` Hessian-vector
    products each (see the module docstring). Not reaching the tolerance warns, raises
    :class:`hessbench.NotConvergedError` or stays quiet (``on_unconverged``); the result
    says so either way. No ``.grad`` is left behind.
    """
    check_policy(on_unconverged)
    if not grad_tol > 0:
        raise ValueError(f"grad_tol must be > 0, got {grad_tol}")
    if min(max_iter, newton_max_steps) < 0 or min(check_every, history_size, cg_max_iter) < 1:
        raise ValueError(f"need max_iter >= 0, newton_max_steps >= 0, check_every >= 1, "
                         f"history_size >= 1, cg_max_iter >= 1; got {max_iter}, "
                         f"{newton_max_steps}, {check_every}, {history_size}, {cg_max_iter}")
    if len(inputs) == 0:
        raise ValueError("empty training set: inputs has no samples")
    trainable_parameters(model)
    loss, norm = grad_norm(model, loss_fn, inputs, targets)
    if not (math.isfinite(loss) and math.isfinite(norm)):
        raise FloatingPointError(f"minimize: non-finite loss {loss} or gradient norm {norm} "
                                 "at the starting point")
    iterations, lbfgs_stalled = _lbfgs(model, loss_fn, inputs, targets, grad_tol, max_iter,
                                       history_size, check_every)
    steps, hvps, newton_stalled = _newton_cg(model, loss_fn, inputs, targets, grad_tol,
                                             newton_max_steps, cg_max_iter)
    stalled = newton_stalled or (lbfgs_stalled and newton_max_steps == 0)
    loss, norm = grad_norm(model, loss_fn, inputs, targets)
    converged = norm <= grad_tol
    stopped = "grad_tol" if converged else "stalled" if stalled else "max_iter"
    result = MinimizeResult(converged=converged, grad_norm=norm, loss=loss,
                            iterations=iterations, newton_steps=steps, hvps=hvps,
                            grad_tol=grad_tol, stopped=stopped)
    if not converged:
        report_unconverged(f"minimize: ||grad L|| = {norm:.3e} > grad_tol = {grad_tol:.1e} "
                            f"after {iterations} L-BFGS iterations and {steps} Newton-CG "
                            f"steps ({stopped}); raise the budgets, use float64 parameters "
                            "or a looser grad_tol (a non-smooth minimum has no small "
                            "gradient)", on_unconverged)
    return result
