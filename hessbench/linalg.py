"""Matrix-free algorithms on symmetric operators (or dense matrices).

* :func:`eigsh` -- thick-restart Lanczos with full reorthogonalisation, stopping on the
  Ritz residual norm ||A y - theta y||.
* :func:`power_iteration` -- PyHessian's deflated power iteration, for comparison; it
  stops on the change of the eigenvalue by default.
* :func:`trace` -- Hutchinson, Hutch++, XTrace and exact, each with a standard error
  (:mod:`hessbench.trace_estimators`).
* :func:`spectral_density` -- stochastic Lanczos quadrature, probes run as one block
  (:mod:`hessbench.slq`).
* :func:`spectrum` -- all eigenvalues of the dense matrix, guarded by a memory estimate;
  :func:`symmetric_eigvalsh` -- all eigenvalues of (A + A^T) / 2 for a dense A.

Long computations (eigsh, spectral_density, spectrum) take ``progress=``: a
``(done, total)`` callback or ``True`` for a rich bar (:mod:`hessbench.progress`).

Krylov recurrences always run in float64, whatever the operator's dtype; only
the products A v happen in the operator's dtype. Randomness comes from a
``torch.Generator`` seeded by the ``seed`` argument, drawn on the CPU, so a seed
gives the same probes on every device.

References: Wu & Simon, SIAM J. Matrix Anal. Appl. 22 (2000) (thick restart);
Yao, Gholami, Keutzer & Mahoney, "PyHessian", IEEE BigData 2020; Hutchinson, Commun.
Stat. Simul. Comput. 18 (1989); Meyer, Musco, Musco & Woodruff, "Hutch++", SOSA 2021;
Golub & Meurant, "Matrices, Moments and Quadrature with Applications" (2010);
Ghorbani, Krishnan & Xiao, ICML 2019 (Hessian spectral densities).
"""
from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch

from hessbench.convergence import OnUnconverged, check_policy, report_unconverged
from hessbench.krylov import F64, apply, basis_memory, orthogonalize, reorthogonalize
from hessbench.operators import CurvatureOperator, as_operator, dense_memory_bytes, \
    require_memory
from hessbench.progress import Progress, reporter
from hessbench.results import EigResult
from hessbench.slq import spectral_density
from hessbench.trace_estimators import trace
from hessbench.utils import seeded_generator
from hessbench.validation import check_float, check_int

__all__ = ["eigsh", "power_iteration", "trace", "spectral_density", "spectrum",
           "symmetric_eigvalsh"]

NOISE_SAFETY = 4.0
"""eigsh's noise floor is this many times the rounding noise measured on a random vector:
on the 4270-parameter trained MLP in float32 (noise 5.3e-6 x |lambda|max) the top-5
eigenvalues were off by up to 2.9x that noise, the noise on Ritz vectors being larger."""


def _wanted(theta: np.ndarray, k: int, which: str) -> np.ndarray:
    """Indices of the ``k`` wanted Ritz values (theta ascending)."""
    j = len(theta)
    if which == "LA":
        return np.arange(j - k, j)[::-1]
    if which == "SA":
        return np.arange(k)
    top = (k + 1) // 2
    return np.concatenate([np.arange(k - top), np.arange(j - top, j)])


def eigsh(A: CurvatureOperator | torch.Tensor | np.ndarray, k: int = 6,
          which: Literal["LA", "SA", "BE"] = "LA", *, tol: float = 1e-6,
          max_matvecs: int | None = None, seed: int = 0, basis_size: int | None = None,
          return_vectors: bool = True, on_unconverged: OnUnconverged = "warn",
          progress: Progress = None) -> EigResult:
    """k extreme eigenpairs of a symmetric operator by thick-restart Lanczos.

    ``which``: "LA" largest algebraic, "SA" smallest, "BE" both ends (ceil(k/2) largest
    and floor(k/2) smallest). A Ritz pair (theta, y) is converged when
    ||A y - theta y|| <= tol * max|theta| (max over the current Ritz values, an estimate
    of ||A||); by Weyl/Kato-Temple the eigenvalue error is then <= that residual and
    typically ~ residual^2 / gap. The basis holds ``basis_size`` vectors (default
    max(2k + 16, 32), at most n); on a restart the ``k + (m - k) // 2`` most wanted Ritz
    vectors are kept. When ``max_matvecs`` (default 50 * basis size) runs out first,
    ``converged`` is False and the policy ``on_unconverged`` warns, raises or stays quiet.
    Degenerate eigenvalues are found once per exact invariant subspace; clusters that
    are numerically distinct are resolved.

    Low-precision operators (float32): the products' rounding noise is measured once
    (one extra product, ||A(u + w) - A u - A w|| for unit u, w) and the attained accuracy
    of a pair is max(residual, noise floor), the floor being max(:data:`NOISE_SAFETY` x that
    noise, eps(dtype) * |theta|max).
    A tol below the floor stops there with ``converged=False``; ``result.noise_floor``
    holds it.

    Which dtype gives which accuracy (top 5 of the trained 4270-parameter MLP of
    ``hessbench.bench.workloads``, against float64 at tol 1e-11;
    ``benchmarks/eigsh_dtype_accuracy.py``): a float32 operator's floor is 2.1e-5 x
    |theta|max, so tol = 1e-4 converges (eigenvalue errors <= 1.5e-5 x |theta|max, 2.9e-5
    relative for the 5th) and tol <= 1e-5, the default 1e-6 included, ends with
    ``converged=False`` at that floor. A float64 operator (``dtype=torch.float64``)
    reaches every tol: eigenvalue errors 6e-9 at tol 1e-4 and 3.5e-13 at tol 1e-6
    (about residual^2 / gap). The basis (about m + k + 4 float64 vectors of length n) is
    refused with ``MemoryError`` when it does not fit. ``progress`` (see :mod:`hessbench.progress`)
    counts products out of ``max_matvecs``, ending at the number used.
    """
    op = as_operator(A)
    n = op.num_params
    check_policy(on_unconverged)
    k, m, tol = _lanczos_args(n, k, which, tol, basis_size)
    budget = 50 * m if max_matvecs is None else check_int(
        "max_matvecs", max_matvecs, minimum=k, hint=f"Lanczos needs at least k = {k} products")
    basis_memory(op, m + k + 4, f"eigsh: a Lanczos basis of {m} vectors of length n = {n}",
                  f"lower k (now {k}) or basis_size (now {m}), or use "
                  f"hessbench.spectral_density(op) for the bulk of the spectrum")
    gen = seeded_generator(seed)
    dev = op.device
    eps = torch.finfo(op.dtype).eps
    probe = eps > 1e-10             # low precision: measure the products' rounding noise
    first: list[torch.Tensor] = []  # A v_0, A v_1 for the linearity probe
    noise = 0.0

    def thresholds(theta: np.ndarray) -> tuple[float, float]:
        """(tol * |theta|max, noise floor) for the current Ritz values."""
        top = max(float(np.abs(theta).max()), np.finfo(float).tiny)
        return tol * top, max(noise, eps * top)

    def random_vector() -> torch.Tensor:
        return torch.randn(n, generator=gen, dtype=F64).to(dev)

    V = torch.zeros(m, n, dtype=F64, device=dev)   # row i: Lanczos vector i, contiguous
    T = np.zeros((m, m))
    b = np.zeros(0)              # Krylov-Schur relation: A V_j = V_j T_j + r b^T
    r = random_vector()
    j, used, scale = 0, 0, 0.0
    with reporter(progress, f"eigsh: k = {k} {which}") as report:
        while True:
            while j < m and used < budget:
                beta = float(torch.linalg.vector_norm(r))
                if beta <= 1e-13 * scale or beta == 0.0:
                    # Exact invariant subspace: go on from a fresh direction, decoupled (b = 0).
                    r = orthogonalize(random_vector(), V[:j].T)
                    b = np.zeros(j)
                    beta = float(torch.linalg.vector_norm(r))
                V[j] = r / beta
                T[:j, j] = T[j, :j] = beta * b
                w = apply(op, V[j, :, None])[:, 0]
                used += 1
                report(used, budget)
                if probe and len(first) < 2:
                    first.append(w)
                    if len(first) == 2 and used < budget:
                        u = (V[0] + V[1]) / math.sqrt(2.0)
                        noise = NOISE_SAFETY * float(torch.linalg.vector_norm(
                            apply(op, u[:, None])[:, 0] - (first[0] + first[1]) / math.sqrt(2.0)))
                        used += 1
                        report(used, budget)
                T[j, j], r = _lanczos_residual(w, V, j, T[:j, j])
                b = np.zeros(j + 1)
                b[j] = 1.0
                j += 1
                scale = max(scale, abs(T[j - 1, j - 1]), beta)
                if j >= k and (j == m or j == n or
                               _ritz_converged(T[:j, :j], b, r, k, which, thresholds)):
                    break
            theta, Y = np.linalg.eigh(T[:j, :j])
            rnorm = float(torch.linalg.vector_norm(r))
            residuals = rnorm * np.abs(b @ Y)
            want = _wanted(theta, k, which)
            bound, floor = thresholds(theta)
            attained = bool(np.all(residuals[want] <= max(bound, floor))) or j == n
            converged = attained and floor <= bound
            if attained or used >= budget:
                report(used, used)
                break
            # Thick restart: keep the most wanted Ritz vectors, the residual direction r stays.
            keep = _wanted(theta, min(j - 1, k + (m - k) // 2), which)
            _rotate_rows(V, j, torch.as_tensor(Y[:, keep], dtype=F64, device=dev))
            T[:] = 0.0
            T[np.arange(len(keep)), np.arange(len(keep))] = theta[keep]
            b = b @ Y[:, keep]
            j = len(keep)
    if which != "LA":
        want = np.sort(want)
    if j == n:
        residuals = np.zeros_like(residuals)
    if probe:   # nothing below the noise floor can be stood behind
        residuals = np.maximum(residuals, floor)
    vectors = V[:j].T @ torch.as_tensor(Y[:, want], dtype=F64, device=dev) if return_vectors \
        else None
    if not converged and floor > bound:
        report_unconverged(
            f"eigsh: tol = {tol:.1e} is below the attainable accuracy of this {op.dtype} "
            f"operator: its products' rounding noise floor is {floor:.3e} = "
            f"{floor / (bound / tol):.1e} x |theta|max, above tol * |theta|max = {bound:.3e}; "
            f"use dtype=torch.float64 or tol >= {2 * floor / (bound / tol):.0e}", on_unconverged)
    elif not converged:
        report_unconverged(
            f"eigsh: {k} {which} eigenpairs not converged after {used} matvecs (max residual "
            f"{residuals[want].max():.3e} > tol * |theta|max = {bound:.3e}); raise max_matvecs "
            f"(now {budget}) or basis_size (now {m}), or loosen tol", on_unconverged)
    return EigResult(values=theta[want], vectors=vectors, residuals=residuals[want],
                     matvecs=used, converged=converged, which=which, tol=tol, seed=seed,
                     noise_floor=floor)


def _lanczos_residual(w: torch.Tensor, V: torch.Tensor, j: int, coupling: np.ndarray
                      ) -> tuple[float, torch.Tensor]:
    """(alpha_j, r) of Lanczos step j from w = A v_j: alpha_j = v_j^T A v_j and r the part
    of w orthogonal to the basis rows V[:j + 1].

    The known terms go first: ``coupling`` = T[:j, j], the projections of A v_j on the
    earlier vectors (beta_j on v_{j-1}; after a thick restart also the couplings to the
    kept Ritz vectors), then alpha_j v_j. What is left of w is then about beta_{j+1}, so one
    Gram-Schmidt pass against the whole basis meets only rounding-size components and
    DGKS rarely repeats it (:func:`hessbench.krylov.reorthogonalize`): two passes over the
    basis per step instead of five. On ResNet-18 (11.2M parameters, a 2.9 GB float64
    basis) these passes, not the products, set the time of a step."""
    nonzero = np.flatnonzero(coupling)
    if len(nonzero):
        lo, hi = int(nonzero[0]), int(nonzero[-1]) + 1
        w = w - torch.as_tensor(coupling[lo:hi], dtype=F64, device=w.device) @ V[lo:hi]
    else:
        w = w.clone()
    alpha = float(V[j] @ w)
    w.sub_(V[j], alpha=alpha)
    return alpha, reorthogonalize(w, V[:j + 1])


ROTATE_CHUNK = 1 << 16
"""Columns of the basis rotated at a time on a thick restart (bounds its scratch memory)."""


def _rotate_rows(V: torch.Tensor, j: int, Y: torch.Tensor) -> None:
    """V[:p] = Y^T V[:j] in place (Y is j x p, p <= j), a chunk of columns at a time, so a
    restart needs no second basis-sized matrix."""
    p = Y.shape[1]
    for start in range(0, V.shape[1], ROTATE_CHUNK):
        block = V[:j, start:start + ROTATE_CHUNK]
        V[:p, start:start + ROTATE_CHUNK] = Y.T @ block


def _lanczos_args(n: int, k: int, which: str, tol: float,
                  basis_size: int | None) -> tuple[int, int, float]:
    """Check the arguments of :func:`eigsh`: (k, basis size m with k < m <= n, tol)."""
    if which not in ("LA", "SA", "BE"):
        raise ValueError(f"which must be 'LA', 'SA' or 'BE', got {which!r}")
    k = check_int("k", k, minimum=1, maximum=n - 1,
                  hint=f"k < n = {n}; for all eigenvalues use hessbench.spectrum(op)")
    tol = check_float("tol", tol, below=1.0, hint="a relative residual tolerance, e.g. 1e-6")
    if basis_size is not None:
        basis_size = check_int("basis_size", basis_size, minimum=k + 1)
    m = min(n, basis_size or max(2 * k + 16, 32))
    return k, m, tol


def _ritz_converged(T: np.ndarray, b: np.ndarray, r: torch.Tensor, k: int, which: str,
                    thresholds) -> bool:
    """Whether the k wanted Ritz pairs of the projected matrix T meet the residual test
    (or the noise floor, where that is higher)."""
    theta, Y = np.linalg.eigh(T)
    want = _wanted(theta, k, which)
    res = float(torch.linalg.vector_norm(r)) * np.abs(b @ Y[:, want])
    return bool(np.all(res <= max(thresholds(theta))))


def power_iteration(A: CurvatureOperator | torch.Tensor | np.ndarray, k: int = 1, *,
                    tol: float = 1e-3, max_iter: int = 100, seed: int = 0,
                    criterion: Literal["eigenvalue", "residual"] = "eigenvalue",
                    on_unconverged: OnUnconverged = "warn") -> EigResult:
    """PyHessian's method: power iteration with deflation against earlier eigenvectors.

    ``criterion="eigenvalue"`` stops, as PyHessian does, when
    |lambda_t - lambda_{t-1}| / (|lambda_{t-1}| + 1e-6) < tol -- which can stop far from
    an eigenvector; ``"residual"`` stops on ||A v - lambda v|| <= tol * |lambda|. Either
    way the true residuals are reported. Finds the largest-*magnitude* eigenvalues.
    Deflation against approximate eigenvectors limits later pairs' residuals to about
    the earlier pairs' residuals.
    """
    op = as_operator(A)
    n = op.num_params
    check_policy(on_unconverged)
    k = check_int("k", k, minimum=1, maximum=n)
    tol = check_float("tol", tol)
    max_iter = check_int("max_iter", max_iter, minimum=1)
    if criterion not in ("eigenvalue", "residual"):
        raise ValueError(f"criterion must be 'eigenvalue' or 'residual', got {criterion!r}")
    gen = seeded_generator(seed)
    found = torch.zeros(n, 0, dtype=F64, device=op.device)
    values, residuals, used, all_converged = [], [], 0, True
    for _ in range(k):
        x = torch.randn(n, generator=gen, dtype=F64).to(op.device)
        lam_prev, converged = None, False
        for _ in range(max_iter):
            v = orthogonalize(x, found)
            v = v / torch.linalg.vector_norm(v)
            Av = apply(op, v[:, None])[:, 0]
            used += 1
            lam = float(v @ Av)
            res = float(torch.linalg.vector_norm(Av - lam * v))
            if criterion == "eigenvalue":
                converged = lam_prev is not None and abs(lam - lam_prev) / (abs(lam_prev) + 1e-6) < tol
            else:
                converged = res <= tol * abs(lam)
            if converged:
                break
            lam_prev, x = lam, Av
        values.append(lam)
        residuals.append(res)
        all_converged &= converged
        found = torch.cat([found, v[:, None]], dim=1)
    if not all_converged:
        report_unconverged(f"power_iteration: not converged within max_iter={max_iter} "
                            f"(criterion {criterion!r}, tol {tol})", on_unconverged)
    return EigResult(values=np.array(values), vectors=found, residuals=np.array(residuals),
                     matvecs=used, converged=all_converged, which="LM", tol=tol, seed=seed)


def spectrum(A: CurvatureOperator | torch.Tensor | np.ndarray, *,
             max_memory_bytes: int | None = None, progress: Progress = None) -> np.ndarray:
    """All eigenvalues, ascending (numpy float64), of the symmetrised dense matrix.

    Builds the dense matrix with block products and calls LAPACK (``eigvalsh``) in
    float64. Refuses with ``MemoryError`` when the copies it holds at once would not fit
    in the available memory (or ``max_memory_bytes``): the dense matrix in the operator's
    dtype, its float64 copy (for a low-precision operator), the symmetrised matrix and
    LAPACK's working copy. Use :func:`eigsh` for a few eigenvalues or
    :func:`spectral_density` for the whole spectrum. ``progress`` (see
    :mod:`hessbench.progress`) counts the dense matrix's columns as they are built.
    """
    op = as_operator(A)
    n = op.num_params
    copies = 3 if op.dtype == F64 else 2
    need = dense_memory_bytes(n, F64, copies) + dense_memory_bytes(n, op.dtype, 1)
    limit = require_memory(need, op.device, max_memory_bytes,
                           f"spectrum: the exact spectrum of an n = {n} operator ({copies} "
                           f"dense float64 matrices and the {op.dtype} one)")
    return symmetric_eigvalsh(op.dense(max_memory_bytes=limit, progress=progress)).cpu().numpy()


def symmetric_eigvalsh(matrix: torch.Tensor) -> torch.Tensor:
    """All eigenvalues, ascending, of the symmetric part (A + A^T) / 2 of a square matrix.

    The matrix is cast to float64 first and the eigenvalues come from LAPACK's symmetric
    solver (``torch.linalg.eigvalsh``), as a float64 tensor on the matrix's device. For a
    matrix that is already symmetric the symmetrisation is exact (a + a = 2a, halved).
    """
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"symmetric_eigvalsh needs a square matrix, got shape "
                         f"{tuple(matrix.shape)}")
    a = matrix.to(F64)
    sym = a + a.T
    del a
    return torch.linalg.eigvalsh(sym.mul_(0.5))
