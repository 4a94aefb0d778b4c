"""The exact Hessian spectrum (every eigenvalue, from the dense matrix) on the small
workloads; ``hb.spectrum`` only, PyHessian has none."""
from __future__ import annotations

from ._common import IMPLS, SMALL, Solver


class ExactSpectrum(Solver):
    """All eigenvalues by ``hb.spectrum`` (dense matrix by block products, LAPACK
    ``eigvalsh`` in float64)."""

    params = [IMPLS, SMALL]
    repeat = (1, 3, 120.0)
    operation = "spectrum"

    def time_spectrum(self, *_: object) -> None:
        self.run()

    def peakmem_spectrum(self, *_: object) -> None:
        self.run()
