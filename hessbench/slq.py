"""Stochastic Lanczos quadrature: a spectral density from independent Lanczos runs, one
per random probe, advanced together as one block of vectors.

Each step applies the operator once to the block of all live probes' Lanczos vectors
(one vmapped product), then, per probe, the three-term recurrence and one pass of
classical Gram-Schmidt against that probe's whole basis (two matrix-vector products
with its contiguous steps x n basis), repeated only for a probe whose vector lost more
than a factor 1/sqrt(2) of its norm in the pass (the DGKS criterion,
:func:`hessbench.krylov.reorthogonalize`).

References: Golub & Meurant, "Matrices, Moments and Quadrature with Applications" (2010);
Lin, Saad & Yang, SIAM Review 58 (2016); Ghorbani, Krishnan & Xiao, ICML 2019.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from hessbench.krylov import F64, apply, basis_memory, rademacher, reorthogonalize
from hessbench.operators import CurvatureOperator, as_operator
from hessbench.progress import Progress, reporter
from hessbench.results import DensityResult
from hessbench.utils import seeded_generator
from hessbench.validation import check_int

__all__ = ["spectral_density"]

BREAKDOWN = 1e-10
"""A probe's Krylov space is exhausted when beta <= this x max|alpha| so far."""


def spectral_density(A: CurvatureOperator | torch.Tensor | np.ndarray, *, num_probes: int = 8,
                     lanczos_steps: int = 80, seed: int = 0,
                     progress: Progress = None) -> DensityResult:
    """Stochastic Lanczos quadrature with Rademacher probes, all probes in one block.

    For each probe v = z / sqrt(n), ``lanczos_steps`` Lanczos steps (full
    reorthogonalisation, float64) give T = Y diag(theta) Y^T; the Gauss rule has nodes
    theta_j and weights Y[0, j]^2, exact for polynomials of degree < 2 * steps. A probe
    whose Krylov space is exhausted early (n < steps, or an invariant subspace) gets
    zero-weight padding nodes and takes no further products. ``progress`` (see
    :mod:`hessbench.progress`) counts Lanczos steps. The bases (probes x steps float64
    vectors of length n) are refused with ``MemoryError`` when they do not fit.
    """
    op = as_operator(A)
    n = op.num_params
    num_probes = check_int("num_probes", num_probes, minimum=1)
    lanczos_steps = check_int("lanczos_steps", lanczos_steps, minimum=1)
    steps = min(lanczos_steps, n)
    basis_memory(op, num_probes * (steps + 4),
                 f"spectral_density: {num_probes} Lanczos bases of {steps} vectors of "
                 f"length n = {n}", "lower num_probes or lanczos_steps")
    gen = seeded_generator(seed)
    V = torch.zeros(num_probes, steps, n, dtype=F64, device=op.device)  # row j: v_j
    V[:, 0] = rademacher(n, num_probes, gen, op.device).T / math.sqrt(n)
    alphas = np.zeros((num_probes, steps))
    betas = np.zeros((num_probes, max(steps - 1, 0)))
    live = list(range(num_probes))
    used = 0
    with reporter(progress, "spectral_density") as report:
        for j in range(steps):
            W = apply(op, V[live, j].T).T.contiguous()
            used += len(live)
            for w, p in zip(W, live):
                alphas[p, j] = float(w @ V[p, j])
                w.sub_(V[p, j], alpha=alphas[p, j])
                if j > 0:
                    w.sub_(V[p, j - 1], alpha=betas[p, j - 1])
                if j == steps - 1:
                    continue
                reorthogonalize(w, V[p, :j + 1])
                beta = float(torch.linalg.vector_norm(w))
                if beta > BREAKDOWN * max(np.abs(alphas[p, :j + 1]).max(), 1e-300):
                    betas[p, j] = beta
                    V[p, j + 1] = w / beta
            live = [p for p in live if j < steps - 1 and betas[p, j] > 0.0]
            report(j + 1, steps if live else j + 1)
            if not live:
                break
    T = np.zeros((num_probes, steps, steps))
    idx = np.arange(steps)
    T[:, idx, idx] = alphas
    T[:, idx[:-1], idx[1:]] = T[:, idx[1:], idx[:-1]] = betas
    theta, Y = np.linalg.eigh(T)
    return DensityResult(nodes=theta, weights=Y[:, 0, :] ** 2, matvecs=used, seed=seed)
