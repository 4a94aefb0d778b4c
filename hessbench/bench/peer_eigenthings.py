"""**hessian-eigenthings** (``hessian-eigenthings`` on PyPI, 1.0) on hessbench's
workloads, as an :class:`~hessbench.bench.impls.Implementation`: its ``HessianOperator``
(double backward per batch, averaged over the loader), its Lanczos (``which="LA"``,
tolerance :data:`~hessbench.bench.specs.EIGSH_TOL`), Hutch++ and SLQ density, each
seeded with 0. It has no block product and no exact spectrum.
"""
from __future__ import annotations

from typing import Any

from hessbench.bench.impls import Call, Implementation, random_block
from hessbench.bench.specs import DENSITY_PROBES, DENSITY_STEPS, EIGSH_TOL, TRACE_BUDGET
from hessbench.bench.workloads import Workload

__all__ = ["HessianEigenthings", "eigenthings_hessian"]


def eigenthings_hessian(w: Workload, batch_size: int | None = None) -> Any:
    """hessian-eigenthings' ``HessianOperator`` of ``w`` (its batches, or one batch)."""
    import hessian_eigenthings as he

    return he.HessianOperator(w.model, w.batch_list(batch_size), he.supervised_loss(w.loss_fn))


class HessianEigenthings(Implementation[Any]):
    """hessian-eigenthings' operator, Lanczos, Hutch++ and SLQ density."""

    name = "eigenthings"
    requires = "hessian_eigenthings"

    def prepare(self, w: Workload, batch_size: int | None = None) -> Any:
        return eigenthings_hessian(w, batch_size)

    def hvp(self, h: Any) -> Call:
        v = random_block(h.size, 1, h.dtype, h.device)[:, 0]
        return lambda: h.matvec(v)

    def top_eigenvalues(self, h: Any, k: int) -> Call:
        import hessian_eigenthings as he

        return lambda: he.lanczos(h, k=k, which="LA", tol=EIGSH_TOL, seed=0)

    def trace(self, h: Any) -> Call:
        import hessian_eigenthings as he

        return lambda: he.hutch_plus_plus(h, num_matvecs=TRACE_BUDGET, seed=0)

    def density(self, h: Any) -> Call:
        import hessian_eigenthings as he

        return lambda: he.spectral_density(h, num_runs=DENSITY_PROBES,
                                           lanczos_steps=DENSITY_STEPS, seed=0)
