"""**curvlinops** (Dangel et al., ``curvlinops-for-pytorch`` on PyPI) on hessbench's
workloads, as an :class:`~hessbench.bench.impls.Implementation`: its
``HessianLinearOperator`` (PyTorch linear operator; products streamed over the batches,
no kept graph), SciPy's ARPACK ``eigsh`` on its ``to_scipy()`` for the top eigenvalues
(curvlinops has no eigensolver of its own), its ``hutchpp_trace`` and
``lanczos_approximate_spectrum`` (both draw from torch's global RNG, seeded per call), and
the dense matrix from products with the identity for the exact spectrum.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from hessbench.bench.impls import Call, Implementation, global_seeded, random_block
from hessbench.bench.specs import DENSITY_PROBES, DENSITY_STEPS, EIGSH_TOL, TRACE_BUDGET
from hessbench.bench.workloads import Workload
from hessbench.linalg import symmetric_eigvalsh
from hessbench.problem import trainable_parameters

__all__ = ["Curvlinops", "curvlinops_hessian", "scipy_top_eigenvalues"]


def curvlinops_hessian(w: Workload, batch_size: int | None = None) -> Any:
    """curvlinops' ``HessianLinearOperator`` of ``w`` (its batches, or one batch)."""
    from curvlinops import HessianLinearOperator

    params = list(trainable_parameters(w.model).values())
    return HessianLinearOperator(w.model, w.loss_fn, params, w.batch_list(batch_size),
                                 check_deterministic=False)


def scipy_top_eigenvalues(h: Any, k: int, tol: float = EIGSH_TOL) -> np.ndarray:
    """The k largest eigenvalues by ARPACK (``scipy.sparse.linalg.eigsh``, ``which="LA"``,
    a seeded start vector) on ``h.to_scipy()``, descending."""
    from scipy.sparse.linalg import eigsh

    A = h.to_scipy()
    v0 = np.random.default_rng(0).standard_normal(A.shape[0])
    return np.sort(eigsh(A, k=k, which="LA", tol=tol, v0=v0, return_eigenvectors=False))[::-1]


class Curvlinops(Implementation[Any]):
    """curvlinops' Hessian operator and estimators (SciPy's ARPACK for top-k)."""

    name = "curvlinops"
    requires = "curvlinops"

    def prepare(self, w: Workload, batch_size: int | None = None) -> Any:
        return curvlinops_hessian(w, batch_size)

    def hvp(self, h: Any) -> Call:
        return self.hvp_block(h, 1)

    def hvp_block(self, h: Any, block: int) -> Call:
        V = random_block(h.shape[1], block, h.dtype, h.device)
        if block == 1:
            v = V[:, 0]
            return lambda: h @ v
        return lambda: h @ V

    def top_eigenvalues(self, h: Any, k: int) -> Call:
        return lambda: scipy_top_eigenvalues(h, k)

    def trace(self, h: Any) -> Call:
        from curvlinops import hutchpp_trace

        budget = 3 * (TRACE_BUDGET // 3)   # its Hutch++ needs a multiple of 3 (99)
        return global_seeded(lambda: hutchpp_trace(h, budget), 0, h.device)

    def density(self, h: Any) -> Call:
        from curvlinops import lanczos_approximate_spectrum

        return global_seeded(lambda: lanczos_approximate_spectrum(
            h, ncv=DENSITY_STEPS, num_repeats=DENSITY_PROBES), 0, h.device)

    def spectrum(self, h: Any) -> Call:
        def run() -> torch.Tensor:
            n = h.shape[1]
            return symmetric_eigvalsh(h @ torch.eye(n, dtype=h.dtype, device=h.device))

        return run
