"""Deterministic accuracy / cost figures of the Hessian core (the gate's ``track``
figures, :data:`hessbench.bench.specs.TRACK`).

Every figure is a matvec count or a relative error, a function of the seeds only (no
timing), so CI can gate on it without timing noise. All errors are measured against
the exact spectrum of the *same* operator (its dense matrix from ``op.dense()``,
symmetrised, ``eigvalsh`` in float64), so they are the algorithms' errors, not the
float32 rounding of the products.

Definitions:

* eigenvalue error: max_i |theta_i - lambda_i| / |lambda_i| over the top k
  (largest algebraic) eigenvalues, both sorted descending.
* trace error at a budget m: root-mean-square over seeds of |t_hat - tr H| / |tr H|.
  For Hutchinson with Rademacher probes this RMSE is known in closed form,
  Var(z^T H z) = 2 (||H||_F^2 - sum_i H_ii^2), so RMSE(m) = sqrt(Var / m) / |tr H|
  (Hutchinson 1989; Avron & Toledo 2011, Lemma 1); for Hutch++ (Meyer et al. 2021)
  it is estimated over seeds 0..S-1 on the dense matrix.
* matvecs for a trace error eps: Hutchinson, the smallest m with RMSE(m) <= eps (closed
  form); Hutch++, the smallest m on the grid 3 * round(2^(j/4)) (j = 0, 1, ...) whose
  RMSE over the seeds is <= eps, scanned upwards, ``None`` if none below n.
* density error: Wasserstein-1 distance between the SLQ quadrature measure (all probes'
  nodes with their weights / number of probes) and the exact spectral measure (mass
  1/n at each eigenvalue), divided by the spectral width lambda_max - lambda_min.

References: Hutchinson, Commun. Stat. Simul. Comput. 18 (1989); Avron & Toledo, J. ACM
58 (2011); Meyer, Musco, Musco & Woodruff, "Hutch++", SOSA 2021; Lin, Saad & Yang,
SIAM Review 58 (2016) (SLQ densities).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch

import hessbench as hb
from hessbench.linalg import symmetric_eigvalsh

__all__ = ["Reference", "exact_reference", "eig_error", "hutchinson_rmse",
           "hutchinson_matvecs_for", "hutchpp_rmse", "hutchpp_matvecs_for", "trace_grid",
           "density_w1"]

F64 = torch.float64


@dataclass(frozen=True)
class Reference:
    """Exact figures of an operator: its dense float64 matrix, eigenvalues (ascending),
    trace, and the wall time (s) the dense build + eigvalsh took."""

    dense: torch.Tensor
    eigenvalues: np.ndarray
    trace: float
    seconds: float

    def top(self, k: int) -> np.ndarray:
        """The k largest eigenvalues, descending."""
        return self.eigenvalues[::-1][:k]


def exact_reference(op: hb.CurvatureOperator) -> Reference:
    """Dense matrix (n HVPs), symmetrised, and all its eigenvalues (as ``hb.spectrum``)."""
    t0 = time.perf_counter()
    H = op.dense().to(F64)
    H = (H + H.T) / 2
    ev = symmetric_eigvalsh(H).cpu().numpy()
    seconds = time.perf_counter() - t0
    return Reference(dense=H, eigenvalues=ev, trace=float(torch.diagonal(H).sum()),
                     seconds=seconds)


def eig_error(values: np.ndarray | list[float], ref: Reference) -> float:
    """max_i |theta_i - lambda_i| / |lambda_i|, both sets of top values sorted descending."""
    theta = np.sort(np.asarray(values, dtype=np.float64))[::-1]
    exact = ref.top(len(theta))
    return float(np.max(np.abs(theta - exact) / np.abs(exact)))


def _hutchinson_variance(H: torch.Tensor) -> float:
    """Var(z^T H z) for Rademacher z: 2 (||H||_F^2 - sum_i H_ii^2)."""
    return float(2 * ((H * H).sum() - (torch.diagonal(H) ** 2).sum()))


def hutchinson_rmse(ref: Reference, m: int) -> float:
    """Exact relative RMSE of Hutchinson's estimate with m Rademacher probes."""
    if m < 1:
        raise ValueError(f"m must be >= 1, got {m}")
    return math.sqrt(_hutchinson_variance(ref.dense) / m) / abs(ref.trace)


def hutchinson_matvecs_for(ref: Reference, eps: float) -> int:
    """Smallest m with Hutchinson relative RMSE <= eps (closed form)."""
    if eps <= 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    return max(1, math.ceil(_hutchinson_variance(ref.dense) / (eps * ref.trace) ** 2 - 1e-9))


def hutchpp_rmse(ref: Reference, m: int, seeds: range | list[int]) -> float:
    """Relative RMSE over ``seeds`` of ``hb.trace(H, "hutch++", num_matvecs=m)`` on the
    dense matrix (same algorithm and probes as on the HVP operator, cheaper products)."""
    errs = [(hb.trace(ref.dense, "hutch++", num_matvecs=m, seed=s).value - ref.trace)
            / ref.trace for s in seeds]
    return float(np.sqrt(np.mean(np.square(errs))))


def trace_grid(limit: int) -> list[int]:
    """Budgets 3 * round(2^(j/4)), j = 4, 5, ..., without repeats, up to ``limit``: from 6,
    since Hutch++ needs at least 4 matvecs (a third each for sketch, range and test)."""
    grid, j = [], 4
    while True:
        m = 3 * round(2 ** (j / 4))
        if m > limit:
            return grid
        if not grid or m != grid[-1]:
            grid.append(m)
        j += 1


def hutchpp_matvecs_for(ref: Reference, eps: float, seeds: range | list[int]) -> int | None:
    """Smallest budget on :func:`trace_grid` (up to n) with Hutch++ RMSE <= eps, or None."""
    for m in trace_grid(ref.dense.shape[0]):
        if hutchpp_rmse(ref, m, seeds) <= eps:
            return m
    return None


def density_w1(result: hb.DensityResult, ref: Reference) -> float:
    """W1(SLQ measure, exact spectral measure) / (lambda_max - lambda_min)."""
    from scipy.stats import wasserstein_distance

    nodes = result.nodes.reshape(-1)
    weights = np.clip(result.weights.reshape(-1), 0.0, None)
    width = float(ref.eigenvalues[-1] - ref.eigenvalues[0])
    return float(wasserstein_distance(nodes, ref.eigenvalues, u_weights=weights)) / width
