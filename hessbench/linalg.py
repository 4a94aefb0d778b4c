"""Matrix-free algorithms on symmetric operators (or dense matrices).

* :func:`eigsh` -- thick-restart Lanczos with full reorthogonalisation, stopping on the
  Ritz residual norm ||A y - theta y||.
* :func:`power_iteration` -- PyHessian's deflated power iteration, for comparison; it
  stops on the change of the eigenvalue by default.
* :func:`trace` -- Hutchinson, Hutch++ and exact, each with a standard error.
* :func:`spectral_density` -- stochastic Lanczos quadrature, probes run as one block.
* :func:`spectrum` -- all eigenvalues of the dense matrix, guarded by a memory estimate;
  :func:`symmetric_eigvalsh` -- all eigenvalues of (A + A^T) / 2 for a dense A.

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
from hessbench.operators import CurvatureOperator, as_operator, dense_memory_bytes, \
    require_memory
from hessbench.results import DensityResult, EigResult, TraceResult
from hessbench.utils import seeded_generator

__all__ = ["eigsh", "power_iteration", "trace", "spectral_density", "spectrum",
           "symmetric_eigvalsh"]

F64 = torch.float64


def _apply(op: CurvatureOperator, V: torch.Tensor) -> torch.Tensor:
    """A V in the operator's dtype, returned in float64."""
    return op.matmat(V.to(op.dtype)).to(F64)


def _orthogonalize(w: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    """Project the columns of ``V`` out of ``w`` (classical Gram-Schmidt, twice)."""
    if V.shape[1] == 0:
        return w
    for _ in range(2):
        w = w - V @ (V.T @ w)
    return w


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
          return_vectors: bool = True,
          on_unconverged: OnUnconverged = "warn") -> EigResult:
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
    """
    op = as_operator(A)
    n = op.num_params
    check_policy(on_unconverged)
    m = _lanczos_basis_size(n, k, which, tol, basis_size)
    budget = max_matvecs if max_matvecs is not None else 50 * m
    gen = seeded_generator(seed)
    dev = op.device

    def random_vector() -> torch.Tensor:
        return torch.randn(n, generator=gen, dtype=F64).to(dev)

    V = torch.zeros(n, m, dtype=F64, device=dev)
    T = np.zeros((m, m))
    b = np.zeros(0)              # Krylov-Schur relation: A V_j = V_j T_j + r b^T
    r = random_vector()
    j, used, scale = 0, 0, 0.0
    while True:
        while j < m and used < budget:
            beta = float(torch.linalg.vector_norm(r))
            if beta <= 1e-13 * scale or beta == 0.0:
                # Exact invariant subspace: go on from a fresh direction, decoupled (b = 0).
                r = _orthogonalize(random_vector(), V[:, :j])
                b = np.zeros(j)
                beta = float(torch.linalg.vector_norm(r))
            V[:, j] = r / beta
            T[:j, j] = T[j, :j] = beta * b
            w = _apply(op, V[:, j:j + 1])[:, 0]
            used += 1
            h = V[:, :j + 1].T @ w
            T[j, j] = float(h[j])
            r = _orthogonalize(w, V[:, :j + 1])
            b = np.zeros(j + 1)
            b[j] = 1.0
            j += 1
            scale = max(scale, abs(T[j - 1, j - 1]), beta)
            if j >= k and (j == m or j == n or _ritz_converged(T[:j, :j], b, r, k, which, tol)):
                break
        theta, Y = np.linalg.eigh(T[:j, :j])
        rnorm = float(torch.linalg.vector_norm(r))
        residuals = rnorm * np.abs(b @ Y)
        want = _wanted(theta, k, which)
        bound = tol * max(np.abs(theta).max(), np.finfo(float).tiny)
        converged = bool(np.all(residuals[want] <= bound)) or j == n
        if converged or used >= budget:
            break
        # Thick restart: keep the most wanted Ritz vectors, the residual direction r stays.
        keep = _wanted(theta, min(j - 1, k + (m - k) // 2), which)
        Yk = torch.as_tensor(Y[:, keep], dtype=F64, device=dev)
        V[:, :len(keep)] = V[:, :j] @ Yk
        T[:] = 0.0
        T[np.arange(len(keep)), np.arange(len(keep))] = theta[keep]
        b = b @ Y[:, keep]
        j = len(keep)
    if which != "LA":
        want = np.sort(want)
    if j == n:
        residuals = np.zeros_like(residuals)
    vectors = V[:, :j] @ torch.as_tensor(Y[:, want], dtype=F64, device=dev) if return_vectors \
        else None
    if not converged:
        report_unconverged(
            f"eigsh: {k} {which} eigenpairs not converged after {used} matvecs (max residual "
            f"{residuals[want].max():.3e} > tol * |theta|max = {bound:.3e}); raise max_matvecs "
            f"(now {budget}) or basis_size (now {m}), or loosen tol", on_unconverged)
    return EigResult(values=theta[want], vectors=vectors, residuals=residuals[want],
                     matvecs=used, converged=converged, which=which, tol=tol, seed=seed)


def _lanczos_basis_size(n: int, k: int, which: str, tol: float,
                        basis_size: int | None) -> int:
    """Check the arguments of :func:`eigsh`; the basis size m (k < m <= n)."""
    if which not in ("LA", "SA", "BE"):
        raise ValueError(f"which must be 'LA', 'SA' or 'BE', got {which!r}")
    if not isinstance(k, int) or k < 1 or k >= n:
        raise ValueError(f"k must be an integer with 1 <= k < n = {n}, got {k}; "
                         f"for all eigenvalues use hessbench.spectrum(op)")
    if tol <= 0:
        raise ValueError(f"tol must be > 0, got {tol}")
    m = min(n, basis_size or max(2 * k + 16, 32))
    if m <= k:
        raise ValueError(f"basis_size must exceed k = {k}, got {basis_size}")
    return m


def _ritz_converged(T: np.ndarray, b: np.ndarray, r: torch.Tensor, k: int, which: str,
                    tol: float) -> bool:
    """Whether the k wanted Ritz pairs of the projected matrix T meet the residual test."""
    theta, Y = np.linalg.eigh(T)
    want = _wanted(theta, k, which)
    res = float(torch.linalg.vector_norm(r)) * np.abs(b @ Y[:, want])
    return bool(np.all(res <= tol * max(np.abs(theta).max(), np.finfo(float).tiny)))


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
    if not isinstance(k, int) or not 1 <= k <= n:
        raise ValueError(f"k must be an integer with 1 <= k <= n = {n}, got {k}")
    if criterion not in ("eigenvalue", "residual"):
        raise ValueError(f"criterion must be 'eigenvalue' or 'residual', got {criterion!r}")
    gen = seeded_generator(seed)
    found = torch.zeros(n, 0, dtype=F64, device=op.device)
    values, residuals, used, all_converged = [], [], 0, True
    for _ in range(k):
        x = torch.randn(n, generator=gen, dtype=F64).to(op.device)
        lam_prev, converged = None, False
        for _ in range(max_iter):
            v = _orthogonalize(x, found)
            v = v / torch.linalg.vector_norm(v)
            Av = _apply(op, v[:, None])[:, 0]
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


def _rademacher(n: int, m: int, gen: torch.Generator, device: torch.device) -> torch.Tensor:
    return (torch.randint(0, 2, (n, m), generator=gen, dtype=F64) * 2 - 1).to(device)


def _quadratic_forms(op: CurvatureOperator, G: torch.Tensor) -> torch.Tensor:
    """g_i^T A g_i for the columns of G."""
    return (G * _apply(op, G)).sum(dim=0)


def _exact_trace(op: CurvatureOperator, block: int) -> float:
    """sum_i e_i^T A e_i, applied to ``block`` basis vectors at a time."""
    n, total = op.num_params, 0.0
    for i in range(0, n, block):
        E = torch.zeros(n, min(block, n - i), dtype=F64, device=op.device)
        E[torch.arange(i, i + E.shape[1]), torch.arange(E.shape[1])] = 1.0
        total += float(_quadratic_forms(op, E).sum())
    return total


def trace(A: CurvatureOperator | torch.Tensor | np.ndarray, method: str = "hutch++", *,
          num_matvecs: int = 100, seed: int = 0, target_rel_error: float | None = None,
          block_size: int = 16,
          on_unconverged: OnUnconverged = "warn") -> TraceResult:
    """Trace of a symmetric operator with a standard error.

    * ``"hutchinson"``: mean of z^T A z over Rademacher probes z; stderr = s / sqrt(m).
    * ``"hutch++"``: with m = ``num_matvecs``, Q = orth(A S) for m/3 probes S, then
      tr(A) = tr(Q^T A Q) + Hutchinson on (I - QQ^T) A (I - QQ^T) with the remaining
      probes (Meyer, Musco, Musco, Woodruff 2021). The stderr is that of the second,
      random term given Q.
    * ``"exact"``: sum of A e_i over all n basis vectors (n matvecs), stderr 0.

    With ``target_rel_error`` the Hutchinson probes (of either method) are drawn in
    blocks of ``block_size`` until stderr <= target * |estimate|, with ``num_matvecs``
    the budget; ``converged`` says whether the target was met.
    """
    op = as_operator(A)
    n = op.num_params
    check_policy(on_unconverged)
    if method == "exact":
        return TraceResult(value=_exact_trace(op, max(1, block_size)), stderr=0.0, matvecs=n,
                           method=method, seed=seed)
    if method not in ("hutchinson", "hutch++"):
        raise ValueError(f"method must be 'hutchinson', 'hutch++' or 'exact', got {method!r}")
    min_needed = 3 if method == "hutch++" else 2
    if num_matvecs < min_needed:
        raise ValueError(f"{method} needs num_matvecs >= {min_needed}, got {num_matvecs}")
    if target_rel_error is not None and target_rel_error <= 0:
        raise ValueError(f"target_rel_error must be > 0, got {target_rel_error}")
    gen = seeded_generator(seed)
    used, low_rank = 0, 0.0
    Q = torch.zeros(n, 0, dtype=F64, device=op.device)
    if method == "hutch++":
        s = min(num_matvecs // 3, n)
        Q = torch.linalg.qr(_apply(op, _rademacher(n, s, gen, op.device))).Q
        low_rank = float(_quadratic_forms(op, Q).sum())
        used += 2 * s
    remaining = num_matvecs - used
    samples = torch.zeros(0, dtype=F64, device=op.device)
    converged = target_rel_error is None
    while remaining >= 1:
        m = remaining if target_rel_error is None else min(block_size, remaining)
        G = _orthogonalize(_rademacher(n, m, gen, op.device), Q)
        samples = torch.cat([samples, _quadratic_forms(op, G)])
        used += m
        remaining -= m
        if target_rel_error is not None and len(samples) >= 2:
            value = low_rank + float(samples.mean())
            stderr = float(samples.std() / math.sqrt(len(samples)))
            if stderr <= target_rel_error * abs(value):
                converged = True
                break
    value = low_rank + (float(samples.mean()) if len(samples) else 0.0)
    stderr = float(samples.std() / math.sqrt(len(samples))) if len(samples) >= 2 else math.inf
    if not converged:
        report_unconverged(f"trace: relative stderr {stderr / abs(value):.3e} above target "
                            f"{target_rel_error:.3e} after {used} matvecs; raise num_matvecs",
                            on_unconverged)
    return TraceResult(value=value, stderr=stderr, matvecs=used, method=method, seed=seed,
                       converged=converged)


def spectral_density(A: CurvatureOperator | torch.Tensor | np.ndarray, *, num_probes: int = 8,
                     lanczos_steps: int = 80, seed: int = 0) -> DensityResult:
    """Stochastic Lanczos quadrature with Rademacher probes, all probes in one block.

    For each probe v = z / sqrt(n), ``lanczos_steps`` Lanczos steps (full
    reorthogonalisation, float64) give T = Y diag(theta) Y^T; the Gauss rule has nodes
    theta_j and weights Y[0, j]^2. A probe whose Krylov space is exhausted early
    (n < steps, or an invariant subspace) gets zero-weight padding nodes.
    """
    op = as_operator(A)
    n = op.num_params
    if num_probes < 1 or lanczos_steps < 1:
        raise ValueError(f"num_probes and lanczos_steps must be >= 1, got {num_probes}, "
                         f"{lanczos_steps}")
    steps = min(lanczos_steps, n)
    gen = seeded_generator(seed)
    V = torch.zeros(num_probes, steps, n, dtype=F64, device=op.device)
    v = _rademacher(n, num_probes, gen, op.device).T / math.sqrt(n)
    alphas = torch.zeros(num_probes, steps, dtype=F64)
    betas = torch.zeros(num_probes, max(steps - 1, 0), dtype=F64)
    for j in range(steps):
        V[:, j] = v
        w = _apply(op, v.T).T
        alphas[:, j] = (w * v).sum(1).cpu()
        basis = V[:, :j + 1]
        for _ in range(2):
            w = w - torch.einsum("pjn,pj->pn", basis, torch.einsum("pjn,pn->pj", basis, w))
        if j == steps - 1:
            break
        beta = torch.linalg.vector_norm(w, dim=1)
        alive = beta > 1e-10 * alphas[:, :j + 1].abs().amax(1).clamp_min(1e-300).to(beta.device)
        beta = torch.where(alive, beta, torch.zeros_like(beta))
        betas[:, j] = beta.cpu()
        v = torch.where(alive[:, None], w / beta.clamp_min(1e-300)[:, None], torch.zeros_like(w))
    T = torch.diag_embed(alphas) + torch.diag_embed(betas, 1) + torch.diag_embed(betas, -1)
    theta, Y = torch.linalg.eigh(T)
    return DensityResult(nodes=theta.numpy(), weights=(Y[:, 0, :] ** 2).numpy(),
                         matvecs=num_probes * steps, seed=seed)


def spectrum(A: CurvatureOperator | torch.Tensor | np.ndarray, *,
             max_memory_bytes: int | None = None) -> np.ndarray:
    """All eigenvalues, ascending (numpy float64), of the symmetrised dense matrix.

    Builds the dense matrix with block products and calls LAPACK (``eigvalsh``) in
    float64. Refuses with ``MemoryError`` when three n x n float64 matrices would not
    fit in the available memory (or ``max_memory_bytes``): use :func:`eigsh` for a few
    eigenvalues or :func:`spectral_density` for the whole spectrum.
    """
    op = as_operator(A)
    n = op.num_params
    limit = require_memory(dense_memory_bytes(n, F64, copies=3), op.device, max_memory_bytes,
                           f"spectrum: the exact spectrum of an n = {n} operator (three dense "
                           f"float64 matrices)")
    return symmetric_eigvalsh(op.dense(max_memory_bytes=limit)).cpu().numpy()


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
    return torch.linalg.eigvalsh((a + a.T) / 2)
