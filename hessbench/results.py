"""Result types of the core routines: frozen dataclasses that carry their error measures.

* :class:`EigResult` -- :func:`hessbench.eigsh`, :func:`hessbench.power_iteration`.
* :class:`TraceResult` -- :func:`hessbench.trace`.
* :class:`DensityResult` -- :func:`hessbench.spectral_density`.
* :class:`MinimizeResult` -- :func:`hessbench.minimize`.
* :class:`TrainResult` -- :func:`hessbench.training.train`.
* :class:`SharpnessResult` -- :func:`hessbench.sharpness.epsilon_sharpness`.

Each has ``to_dict()`` (plain data, ``json.dumps``-able: arrays and tensors become lists),
``from_dict(d)`` (its inverse) and a short ``repr`` (shapes and a few numbers, no tensor
dumps); see :class:`~hessbench.result_format.ResultFormat`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from hessbench.result_format import ResultFormat
from hessbench.validation import check_float, check_int

__all__ = ["EigResult", "TraceResult", "DensityResult", "MinimizeResult", "TrainResult",
           "SharpnessResult"]


@dataclass(frozen=True, repr=False)
class EigResult(ResultFormat):
    """Eigenpairs: ``values`` (numpy float64; descending for LA, ascending for SA/BE),
    ``vectors`` (torch float64, n x k, on the operator's device, or None),
    ``residuals`` ||A y - theta y|| per pair (for eigsh on a low-precision operator at
    least ``noise_floor``, the attainable accuracy its products' rounding allows),
    ``matvecs``, ``converged``."""

    _ARRAYS: ClassVar[tuple[str, ...]] = ("values", "residuals")
    _TENSORS: ClassVar[tuple[str, ...]] = ("vectors",)

    values: np.ndarray
    vectors: torch.Tensor | None
    residuals: np.ndarray
    matvecs: int
    converged: bool
    which: str
    tol: float
    seed: int
    noise_floor: float = 0.0


@dataclass(frozen=True, repr=False)
class TraceResult(ResultFormat):
    """A trace estimate with its standard error (0 for ``exact``)."""

    value: float
    stderr: float
    matvecs: int
    method: str
    seed: int
    converged: bool = True


@dataclass(frozen=True, repr=False)
class DensityResult(ResultFormat):
    """Gauss quadrature rules from stochastic Lanczos quadrature, one row per probe.

    For each probe v (||v|| = 1), sum_j weights[p, j] f(nodes[p, j]) approximates
    v^T f(A) v, exactly for polynomials of degree < 2 * steps; the average over
    probes estimates (1/n) tr f(A).

    References: Golub & Meurant, "Matrices, Moments and Quadrature with Applications"
    (2010); Ghorbani, Krishnan & Xiao, ICML 2019.
    """

    _ARRAYS: ClassVar[tuple[str, ...]] = ("nodes", "weights")

    nodes: np.ndarray
    weights: np.ndarray
    matvecs: int
    seed: int

    def default_sigma(self) -> float:
        """The broadening width used when none is given: 1/200 of the range of the nodes
        (1e-3 of their magnitude, or 1e-3, when they all coincide)."""
        lo, hi = float(np.min(self.nodes)), float(np.max(self.nodes))
        if hi > lo:
            return (hi - lo) / 200
        return 1e-3 * max(abs(lo), 1.0)

    def default_grid(self, num: int = 1000, sigma: float | None = None) -> np.ndarray:
        """``num`` equally spaced points from the smallest node to the largest, widened by
        5 ``sigma`` (default :meth:`default_sigma`) on each side."""
        num = check_int("num", num, minimum=2)
        sigma = self.default_sigma() if sigma is None else check_float("sigma", sigma)
        return np.linspace(np.min(self.nodes) - 5 * sigma, np.max(self.nodes) + 5 * sigma, num)

    def density(self, grid: np.ndarray | None = None, sigma: float | None = None) -> np.ndarray:
        """Spectral density on ``grid`` (default :meth:`default_grid`) broadened by a
        Gaussian of width ``sigma`` (default :meth:`default_sigma`); integrates to 1."""
        sigma = self.default_sigma() if sigma is None else check_float(
            "sigma", sigma, hint="the Gaussian broadening width")
        grid = self.default_grid(sigma=sigma) if grid is None else np.asarray(grid,
                                                                             dtype=np.float64)
        z = (grid[:, None] - self.nodes.reshape(-1)[None, :]) / sigma
        kern = np.exp(-0.5 * z * z) / (sigma * math.sqrt(2 * math.pi))
        return kern @ self.weights.reshape(-1) / self.nodes.shape[0]

    def moment(self, p: int) -> float:
        """Estimate of tr(A^p) / n."""
        return float(np.mean(np.sum(self.weights * self.nodes ** p, axis=1)))


@dataclass(frozen=True, repr=False)
class MinimizeResult(ResultFormat):
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


@dataclass(frozen=True, repr=False)
class TrainResult(ResultFormat):
    """Training record: full-batch loss every ``eval_every`` steps, and why it stopped
    ("max_steps", "plateau" or "target_loss")."""

    steps: int
    losses: list[float]
    final_loss: float
    stopped: str


@dataclass(frozen=True, repr=False)
class SharpnessResult(ResultFormat):
    """Epsilon-sharpness phi (percent, a lower bound), the losses L(theta) and
    max L(theta + delta) it compares, and the search budget."""

    value: float
    loss: float
    max_loss: float
    epsilon: float
    steps: int
    restarts: int
