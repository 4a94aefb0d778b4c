r"""Noisy SGD on the valley toys of Wei & Schwab §4.2 and its leading-order theory.

Shared by the experiments ``wei_schwab_trace_rate`` (Theorem 1, Fig. 2b) and
``wei_schwab_trace_noise_structure`` (Corollary 2.1, Fig. 2c-d); registers no experiment.

Conventions
-----------
Toy loss ``L = sum_i a_i(y) x_i^2`` (``hessbench.landscapes.ValleyToy``; no 1/2, so the
non-degenerate Hessian on the floor is ``H_nd = diag(2 a(y))``). One step is SGD with
additive Gaussian gradient noise restricted to the non-degenerate coordinates:

    theta_{t+1} = theta_t - eta (grad L(theta_t) + xi_t),    xi_t ~ N(0, C(y_t)) on x, 0 on y,

* SGD-like noise (Eq. 5, 10):  ``C = sigma^2 H_nd(y) = sigma^2 diag(2 a(y))``;
* isotropic noise:             ``C = sigma_iso^2 I_k``.

The noise enters as ``eta * xi`` (a minibatch gradient with covariance C), not as
``sqrt(eta) xi`` (an SDE discretisation): under the latter convention every rate
below is divided by ``eta``. ``Tr H`` and ``log det H_nd`` are evaluated at the
floor point ``(0, y)``; off the floor the full trace differs by
``sum_i x_i^2 Lap a_i(y) = O(eta sigma^2)``, a stationary offset that cancels in
changes measured after equilibration (and is exactly 0 for the |.| toy).

Leading-order prediction (the proof of Theorem 1, in these conventions)
-----------------------------------------------------------------------
1. Fast coordinates, exact: ``x_{i,t+1} = (1 - 2 eta a_i) x_{i,t} - eta xi_{i,t}``. With y
   frozen this is AR(1) with stationary variance
   ``v_i = eta^2 c_i / (1 - (1 - 2 eta a_i)^2) = eta c_i / (4 a_i (1 - eta a_i))``, ``c_i = C_ii``:
   SGD-like ``v_i = eta sigma^2 / (2 (1 - eta a_i))``; isotropic
   ``v_i = eta sigma_iso^2 / (4 a_i (1 - eta a_i))``.
2. Slow coordinates, exact and noise-free: ``y_{t+1} = y_t - eta sum_i x_{i,t}^2 grad a_i(y_t)``
   (the third-derivative term, ``grad a_i = (1/2) d/dy H_ii``). Averaging over the
   fast variable: ``E[dy] = -eta sum_i v_i grad a_i``.
3. To first order in ``dy``, with ``Tr H = 2 sum_i a_i`` and ``log det = sum_i log 2 a_i``:
   SGD-like, ``v_i -> eta sigma^2 / 2``:
   ``E[d Tr H] = -(eta^2 sigma^2 / 4) |grad_y Tr H|^2 <= 0``          (Theorem 1)
   isotropic, ``v_i -> eta sigma_iso^2 / (4 a_i)``:
   ``E[d log det H_nd] = -(eta^2 sigma_iso^2 / 4) |grad_y log det H_nd|^2 <= 0``   (Cor. 2.1)
   per step, with equality iff the gradient vanishes or there is no noise (GD).
   The neglected terms are relative ``O(eta a_i)`` (the ``1 - eta a_i`` factor) and
   ``O(|dy|)``.

References
----------
M. Wei and D. J. Schwab, "How noise affects the Hessian spectrum in overparameterized
neural networks", ICLR 2020: §2 (Theorem 1; Eq. 5, 10), §3 (Corollary 2.1), §4.2 (Fig. 2b-d).
"""
from __future__ import annotations

import torch

from hessbench.landscapes import ValleyToy
from hessbench.utils import seeded_generator

__all__ = ["NOISES", "DTYPE", "valley_sgd", "stationary_variance", "mean_drift",
           "leading_order_path", "trace_gradient"]

NOISES = ("hessian", "isotropic")
DTYPE = torch.float64


def _check_noise(noise: str) -> None:
    if noise not in NOISES:
        raise ValueError(f"noise must be one of {NOISES}, got {noise!r}")


def _noise_variance(noise: str, a: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Diagonal ``c_i`` of C: ``sigma^2 * 2 a_i`` (C = sigma^2 H_nd) or ``sigma^2`` (isotropic)."""
    s2 = (sigma * sigma)[:, None]
    return s2 * 2.0 * a.clamp(min=0.0) if noise == "hessian" else s2.expand_as(a)


def valley_sgd(toy: ValleyToy, y0: torch.Tensor, eta: torch.Tensor, sigma: torch.Tensor, *,
               noise: str, steps: int, record: list[int], seed: int) -> torch.Tensor:
    """Run independent noisy-SGD chains from ``(x, y) = (0, y0)``; return ``y`` at ``record`` steps.

    ``eta`` and ``sigma`` have one entry per chain (shape ``(B,)``), ``y0`` shape ``(m,)``.
    Returns shape ``(len(record), B, m)``; step 0 is the initial point.
    """
    _check_noise(noise)
    if eta.ndim != 1 or eta.shape != sigma.shape:
        raise ValueError(f"eta and sigma must be 1-D of equal length (one per chain), "
                         f"got {tuple(eta.shape)} and {tuple(sigma.shape)}")
    if y0.shape != (toy.n_degenerate,):
        raise ValueError(f"y0 must have shape ({toy.n_degenerate},), got {tuple(y0.shape)}")
    if sorted(set(record)) != list(record) or not record or record[0] < 0 or record[-1] > steps:
        raise ValueError(f"record must be strictly increasing steps in [0, {steps}], got {record}")
    gen = seeded_generator(seed, eta.device)
    chains = eta.shape[0]
    x = eta.new_zeros(chains, toy.n_nondegenerate)
    y = y0.to(eta).expand(chains, -1).clone()
    wanted, out = set(record), []
    e, w = eta[:, None], toy.form_matrix(y)
    for t in range(steps + 1):
        if t in wanted:
            out.append(y.clone())
        if t == steps:
            break
        a, da, _ = toy.profile(y @ w.T)
        # standard normals drawn in float32 (5x faster on CPU), used in float64
        z = torch.randn(x.shape, generator=gen, dtype=torch.float32, device=x.device).to(x.dtype)
        y = y - e * ((x * x * da) @ w)          # sum_i x_i^2 grad a_i, grad a_i = f_i' w_i
        x = x - e * (2.0 * a * x + _noise_variance(noise, a, sigma).sqrt() * z)
    return torch.stack(out)


def stationary_variance(noise: str, a: torch.Tensor, eta: float, sigma: float, *,
                        leading: bool = True) -> torch.Tensor:
    """``E[x_i^2]`` of the frozen-y AR(1) (step 1 above).

    ``leading`` drops the ``1 / (1 - eta a)`` factor.
    """
    _check_noise(noise)
    # eta c / (4 a) with c = 2 sigma^2 a (SGD-like) or sigma^2 (isotropic)
    if noise == "hessian":
        v = torch.full_like(a, eta * sigma ** 2 / 2.0)
    else:
        v = eta * sigma ** 2 / (4.0 * a)
    return v if leading else v / (1.0 - eta * a)


def mean_drift(toy: ValleyToy, y: torch.Tensor, eta: float, sigma: float, noise: str, *,
               leading: bool = True) -> torch.Tensor:
    """``E[dy] = -eta sum_i v_i grad a_i(y)`` per step (step 2 above), shape ``(B, m)``."""
    a, grad_a, _ = toy.coefficients(toy.check_y(y))
    v = stationary_variance(noise, a, eta, sigma, leading=leading)
    return -eta * torch.einsum("bi,bij->bj", v, grad_a)


def leading_order_path(toy: ValleyToy, y0: torch.Tensor, eta: float, sigma: float, noise: str,
                       steps: int) -> torch.Tensor:
    """The deterministic path ``y_{t+1} = y_t + E[dy](y_t)``, shape ``(steps + 1, m)``."""
    ys = [y0.to(DTYPE)[None]]
    for _ in range(steps):
        ys.append(ys[-1] + mean_drift(toy, ys[-1], eta, sigma, noise))
    return torch.cat(ys)


def trace_gradient(toy: ValleyToy, y: torch.Tensor) -> torch.Tensor:
    """``grad_y Tr H(0, y) = 2 sum_i grad a_i(y)``, shape ``(B, m)``."""
    _, grad_a, _ = toy.coefficients(toy.check_y(y))
    return 2.0 * grad_a.sum(dim=1)
