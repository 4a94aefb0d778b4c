"""Result types of the core routines: frozen dataclasses that carry their error measures.

* :class:`EigResult` -- :func:`hessbench.eigsh`, :func:`hessbench.power_iteration`.
* :class:`TraceResult` -- :func:`hessbench.trace`.
* :class:`DensityResult` -- :func:`hessbench.spectral_density`.
* :class:`MinimizeResult` -- :func:`hessbench.minimize`.
* :class:`TrainResult` -- :func:`hessbench.training.train`.
* :class:`SharpnessResult` -- :func:`hessbench.sharpness.epsilon_sharpness`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from hessbench.validation import check_float

__all__ = ["EigResult", "TraceResult", "DensityResult", "MinimizeResult", "TrainResult",
           "SharpnessResult"]


@dataclass(frozen=True)
class EigResult:
    """Eigenpairs: ``values`` (numpy float64; descending for LA, ascending for SA/BE),
    ``vectors`` (torch float64, n x k, on the operator's device, or None),
    ``residuals`` ||A y - theta y|| per pair (for eigsh on a low-precision operator at
    least ``noise_floor``, the attainable accuracy its products' rounding allows),
    ``matvecs``, ``converged``."""

    values: np.ndarray
    vectors: torch.Tensor | None
    residuals: np.ndarray
    matvecs: int
    converged: bool
    which: str
    tol: float
    seed: int
    noise_floor: float = 0.0


@dataclass(frozen=True)
class TraceResult:
    """A trace estimate with its standard error (0 for ``exact``)."""

    value: float
    stderr: float
    matvecs: int
    method: str
    seed: int
    converged: bool = True


@dataclass(frozen=True)
class DensityResult:
    """Gauss quadrature rules from stochastic Lanczos quadrature, one row per probe.

    For each probe v (||v|| = 1), sum_j weights[p, j] f(nodes[p, j]) approximates
    v^T f(A) v, exactly for polynomials of degree < 2 * steps; the average over
    probes estimates (1/n) tr f(A).

    References: Golub & Meurant, "Matrices, Moments and Quadrature with Applications"
    (2010); Ghorbani, Krishnan & Xiao, ICML 2019.
    """

    nodes: np.ndarray
    weights: np.ndarray
    matvecs: int
    seed: int

    def density(self, grid: np.ndarray, sigma: float) -> np.ndarray:
        """Spectral density broadened by a Gaussian of width ``sigma``; integrates to 1."""
        sigma = check_float("sigma", sigma, hint="the Gaussian broadening width")
        grid = np.asarray(grid, dtype=np.float64)
        z = (grid[:, None] - self.nodes.reshape(-1)[None, :]) / sigma
        kern = np.exp(-0.5 * z * z) / (sigma * math.sqrt(2 * math.pi))
        return kern @ self.weights.reshape(-1) / self.nodes.shape[0]

    def moment(self, p: int) -> float:
        """Estimate of tr(A^p) / n."""
        return float(np.mean(np.sum(self.weights * self.nodes ** p, axis=1)))


@dataclass(frozen=True)
class MinimizeResult:
    """Where :func:`hessbench.minimize` stopped: ``loss`` and ``grad_norm`` (2-norm) at the
    returned point; L-BFGS ``iterations``, Newton ``newton_steps`` and their
    Hessian-vector products ``hvps``; whether ``grad_norm <= grad_tol`` (``converged``)
    and why it stopped: "grad_tol", "max_iter" (budgets spent) or "stalled" (no step of
    the last stage reduced the gradient norm)."""

    converged: bool
    grad_norm: float
    loss: float
    iterations: int
    newton_steps: int
    hvps: int
    grad_tol: float
    stopped: str


@dataclass(frozen=True)
class TrainResult:
    """Training record: full-batch loss every ``eval_every`` steps, and why it stopped
    ("max_steps", "plateau" or "target_loss")."""

    steps: int
    losses: list[float] = field(repr=False)
    final_loss: float
    stopped: str


@dataclass(frozen=True)
class SharpnessResult:
    """Epsilon-sharpness phi (percent, a lower bound), the losses L(theta) and
    max L(theta + delta) it compares, and the search budget."""

    value: float
    loss: float
    max_loss: float
    epsilon: float
    steps: int
    restarts: int
