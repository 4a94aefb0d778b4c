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
from hessbench.validation import check_float, check_int

__all__ = ["eigsh", "power_iteration", "trace", "spectral_density", "spectrum",
           "symmetric_eigvalsh"]

F64 = torch.float64
NOISE_SAFETY = 4.0
"""eigsh's noise floor is this many times the rounding noise measured on a random vector:
on the 4270-parameter trained MLP in float32 (noise 5.3e-6 x |lambda|max) the top-5
eigenvalues were off by up to 2.9x that noise, the noise on Ritz vectors being larger."""


def _apply(op: CurvatureOperator, V: torch.Tensor) -> torch.Tensor:
    """A V in the operator's dtype, returned in float64; ``ValueError`` on NaN/Inf."""
    W = op.matmat(V.to(op.dtype)).to(F64)
    if not bool(torch.isfinite(W).all()):
        raise ValueError(f"{op.name}: a product A v is NaN/Inf; check the data and the model "
                         f"(or use dtype=torch.float64 if the loss overflows)")
    return W


def _basis_memory(op: CurvatureOperator, vectors: int, what: str, advice: str) -> None:
    """Refuse (``MemoryError``) a float64 basis of ``vectors`` columns that does not fit."""
    require_memory(8 * op.num_params * vectors, op.device, None, what, advice=advice)


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

    Low-precision operators (float32): the products' rounding noise is measured once
    (one extra product, ||A(u + w) - A u - A w|| for unit u, w) and the attained accuracy
    of a pair is max(residual, noise floor), the floor being max(:data:`NOISE_SAFETY` x that
    noise, eps(dtype) * |theta|max).
    A tol below the floor stops there with ``converged=False``; ``result.noise_floor``
    holds it. The basis (about 2m + k float64 vectors of length n) is refused with
    ``MemoryError`` when it does not fit.
    """
    op = as_operator(A)
    n = op.num_params
    check_policy(on_unconverged)
    k, m, tol = _lanczos_args(n, k, which, tol, basis_size)
    budget = 50 * m if max_matvecs is None else check_int(
        "max_matvecs", max_matvecs, minimum=k, hint=f"Lanczos needs at least k = {k} products")
    _basis_memory(op, 2 * m + k, f"eigsh: a Lanczos basis of {m} vectors of length n = {n}",
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
            if probe and len(first) < 2:
                first.append(w)
                if len(first) == 2 and used < budget:
                    u = (V[:, 0] + V[:, 1]) / math.sqrt(2.0)
                    noise = NOISE_SAFETY * float(torch.linalg.vector_norm(
                        _apply(op, u[:, None])[:, 0] - (first[0] + first[1]) / math.sqrt(2.0)))
                    used += 1
            h = V[:, :j + 1].T @ w
            T[j, j] = float(h[j])
            r = _orthogonalize(w, V[:, :j + 1])
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
    if probe:   # nothing below the noise floor can be stood behind
        residuals = np.maximum(residuals, floor)
    vectors = V[:, :j] @ torch.as_tensor(Y[:, want], dtype=F64, device=dev) if return_vectors \
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
    the budget; ``converged`` says whether the target was met. ``"exact"`` always uses
    n products (``num_matvecs`` is then only checked, not a budget).
    """
    op = as_operator(A)
    n = op.num_params
    check_policy(on_unconverged)
    if method not in ("hutchinson", "hutch++", "exact"):
        raise ValueError(f"method must be 'hutchinson', 'hutch++' or 'exact', got {method!r}")
    # hutch++: 2 * (m // 3) products for the sketch, then >= 2 probes for a stderr.
    min_needed = {"hutch++": 4, "hutchinson": 2, "exact": 1}[method]
    num_matvecs = check_int("num_matvecs", num_matvecs, minimum=min_needed,
                            hint=f"{method} needs at least {min_needed}")
    block_size = check_int("block_size", block_size, minimum=1)
    if target_rel_error is not None:
        target_rel_error = check_float("target_rel_error", target_rel_error)
    if method == "exact":
        return TraceResult(value=_exact_trace(op, block_size), stderr=0.0, matvecs=n,
                           method=method, seed=seed)
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
    converged = converged and math.isfinite(stderr)
    if not converged and target_rel_error is None:
        report_unconverged(f"trace: no standard error from {len(samples)} probe(s); raise "
                           f"num_matvecs", on_unconverged)
    elif not converged:
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
    num_probes = check_int("num_probes", num_probes, minimum=1)
    lanczos_steps = check_int("lanczos_steps", lanczos_steps, minimum=1)
    steps = min(lanczos_steps, n)
    _basis_memory(op, num_probes * (steps + 4),
                  f"spectral_density: {num_probes} Lanczos bases of {steps} vectors of "
                  f"length n = {n}", "lower num_probes or lanczos_steps")
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
    float64. Refuses with ``MemoryError`` when the copies it holds at once would not fit
    in the available memory (or ``max_memory_bytes``): the dense matrix in the operator's
    dtype, its float64 copy (for a low-precision operator), the symmetrised matrix and
    LAPACK's working copy. Use :func:`eigsh` for a few eigenvalues or
    :func:`spectral_density` for the whole spectrum.
    """
    op = as_operator(A)
    n = op.num_params
    copies = 3 if op.dtype == F64 else 2
    need = dense_memory_bytes(n, F64, copies) + dense_memory_bytes(n, op.dtype, 1)
    limit = require_memory(need, op.device, max_memory_bytes,
                           f"spectrum: the exact spectrum of an n = {n} operator ({copies} "
                           f"dense float64 matrices and the {op.dtype} one)")
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
    sym = a + a.T
    del a
    return torch.linalg.eigvalsh(sym.mul_(0.5))
