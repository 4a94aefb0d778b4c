"""Trace of a symmetric operator from products alone: Hutchinson, Hutch++, XTrace, exact.

References: Hutchinson, Commun. Stat. Simul. Comput. 18 (1989); Meyer, Musco, Musco &
Woodruff, "Hutch++", SOSA 2021; Epperly, Tropp & Webber, "XTrace", SIAM J. Matrix Anal.
Appl. 45 (2024) (:mod:`hessbench.xtrace`).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from hessbench.convergence import OnUnconverged, check_policy, report_unconverged
from hessbench.krylov import F64, apply, orthogonalize, rademacher
from hessbench.operators import CurvatureOperator, as_operator
from hessbench.results import TraceResult
from hessbench.utils import seeded_generator
from hessbench.validation import check_float, check_int
from hessbench.xtrace import sphere_vectors, xtrace_samples

__all__ = ["trace", "METHODS"]

METHODS = ("xtrace", "hutch++", "hutchinson", "exact")
# the fewest products each method needs for an estimate with a standard error
_MIN_MATVECS = {"hutch++": 4, "xtrace": 4, "hutchinson": 2, "exact": 1}


def _quadratic_forms(op: CurvatureOperator, G: torch.Tensor) -> torch.Tensor:
    """g_i^T A g_i for the columns of G."""
    return (G * apply(op, G)).sum(dim=0)


def _exact_trace(op: CurvatureOperator, block: int) -> float:
    """sum_i e_i^T A e_i, applied to ``block`` basis vectors at a time."""
    n, total = op.num_params, 0.0
    for i in range(0, n, block):
        E = torch.zeros(n, min(block, n - i), dtype=F64, device=op.device)
        E[torch.arange(i, i + E.shape[1]), torch.arange(E.shape[1])] = 1.0
        total += float(_quadratic_forms(op, E).sum())
    return total


def _stderr(samples: torch.Tensor) -> float:
    """Standard error of the mean of ``samples`` (inf with fewer than two)."""
    return float(samples.std() / math.sqrt(len(samples))) if len(samples) >= 2 else math.inf


def trace(A: CurvatureOperator | torch.Tensor | np.ndarray, method: str | None = None, *,
          num_matvecs: int = 100, seed: int = 0, target_rel_error: float | None = None,
          block_size: int = 16,
          on_unconverged: OnUnconverged = "warn") -> TraceResult:
    """Trace of a symmetric operator with a standard error.

    ``method=None`` (default) is ``"xtrace"``, or ``"hutch++"`` when ``target_rel_error``
    is given (XTrace spends its budget at once). XTrace is the default by measurement:
    relative RMSE over 40 seeds on the bench workloads (``benchmarks/trace_rmse.py``;
    +- about 10% of each figure):

    ======================  =====  ==========  =======  ======
    workload                 m     Hutchinson  Hutch++  XTrace
    ======================  =====  ==========  =======  ======
    MLP trained (outliers)   99    2.70%       0.67%    0.85%
    MLP trained              300   1.57%       0.34%    0.22%
    MLP trained              999   0.92%       0.11%    0.07%
    MLP at init (indefinite) 99    15.2%       21.2%    16.2%
    MLP at init              300   9.0%        8.0%     8.3%
    MLP at init              999   4.3%        2.8%     1.4%
    ======================  =====  ==========  =======  ======

    XTrace is 1.5-2x more accurate than Hutch++ at 300-999 products on both and within
    the seeds' noise of the best at 99; its mean error estimate was 0.67-1.08 of its RMSE
    there (Hutch++'s 0.84-1.24).

    * ``"hutchinson"``: mean of z^T A z over Rademacher probes z; stderr = s / sqrt(m).
    * ``"hutch++"``: with m = ``num_matvecs``, Q = orth(A S) for m/3 probes S, then
      tr(A) = tr(Q^T A Q) + Hutchinson on (I - QQ^T) A (I - QQ^T) with the remaining
      probes (Meyer, Musco, Musco, Woodruff 2021). The stderr is that of the second,
      random term given Q.
    * ``"xtrace"``: Epperly, Tropp & Webber 2024 with m/2 test vectors (at most n):
      the mean of the m/2 exchangeable leave-one-out estimates of
      :mod:`hessbench.xtrace` (each a Hutch++ whose sketch omits one test vector, which
      then serves as its probe); the stderr is the paper's error estimate, their standard
      deviation / sqrt(m/2). It uses every product for both the sketch and the probes, and
      is exact for an operator of rank < m/2.
    * ``"exact"``: sum of A e_i over all n basis vectors (n matvecs), stderr 0.

    With ``target_rel_error`` the Hutchinson probes (of hutchinson or hutch++) are drawn
    in blocks of ``block_size`` until stderr <= target * |estimate|, with ``num_matvecs``
    the budget; ``converged`` says whether the target was met. ``"exact"`` always uses
    n products (``num_matvecs`` is then only checked, not a budget).
    """
    op = as_operator(A)
    n = op.num_params
    check_policy(on_unconverged)
    if method is None:
        method = "xtrace" if target_rel_error is None else "hutch++"
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(map(repr, METHODS))}, got "
                         f"{method!r}")
    num_matvecs = check_int("num_matvecs", num_matvecs, minimum=_MIN_MATVECS[method],
                            hint=f"{method} needs at least {_MIN_MATVECS[method]}")
    block_size = check_int("block_size", block_size, minimum=1)
    if target_rel_error is not None:
        target_rel_error = check_float("target_rel_error", target_rel_error)
        if method == "xtrace":
            raise ValueError("target_rel_error: xtrace spends its whole budget at once; use "
                             "method='hutch++' for an adaptive budget, or read the stderr "
                             "of xtrace and raise num_matvecs")
    if method == "exact":
        return TraceResult(value=_exact_trace(op, block_size), stderr=0.0, matvecs=n,
                           method=method, seed=seed)
    gen = seeded_generator(seed)
    if method == "xtrace":
        m = min(num_matvecs // 2, n)
        samples = xtrace_samples(op, sphere_vectors(n, m, gen, op.device))
        return TraceResult(value=float(samples.mean()), stderr=_stderr(samples),
                           matvecs=2 * m, method=method, seed=seed)
    return _hutchinson_family(op, method, num_matvecs, gen, seed, target_rel_error,
                              block_size, on_unconverged)


def _hutchinson_family(op: CurvatureOperator, method: str, num_matvecs: int,
                       gen: torch.Generator, seed: int, target_rel_error: float | None,
                       block_size: int, on_unconverged: OnUnconverged) -> TraceResult:
    """Hutchinson, or Hutch++ (Hutchinson on the complement of a sketch), as in
    :func:`trace`."""
    n = op.num_params
    used, low_rank = 0, 0.0
    Q = torch.zeros(n, 0, dtype=F64, device=op.device)
    if method == "hutch++":
        s = min(num_matvecs // 3, n)
        Q = torch.linalg.qr(apply(op, rademacher(n, s, gen, op.device))).Q
        low_rank = float(_quadratic_forms(op, Q).sum())
        used += 2 * s
    remaining = num_matvecs - used
    samples = torch.zeros(0, dtype=F64, device=op.device)
    converged = target_rel_error is None
    while remaining >= 1:
        m = remaining if target_rel_error is None else min(block_size, remaining)
        G = orthogonalize(rademacher(n, m, gen, op.device), Q)
        samples = torch.cat([samples, _quadratic_forms(op, G)])
        used += m
        remaining -= m
        if target_rel_error is not None and len(samples) >= 2:
            value = low_rank + float(samples.mean())
            if _stderr(samples) <= target_rel_error * abs(value):
                converged = True
                break
    value = low_rank + (float(samples.mean()) if len(samples) else 0.0)
    stderr = _stderr(samples)
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
