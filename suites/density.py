"""Spectral densities by stochastic Lanczos quadrature (Lin, Saad & Yang 2016) on the
fixed workloads: ``hb.spectral_density`` with 8 probes of 80 Lanczos steps, and
PyHessian's ``density(iter=100, n_v=1)``. PyHessian's calls ``torch.eig``, removed in
torch 1.9: where it crashes its benchmark is skipped (a failing benchmark would make
every ``asv run`` exit non-zero), and ``hessbench bench compare`` prints the error."""
from __future__ import annotations

from ._common import Solver


class Density(Solver):
    """One SLQ density with each implementation's settings."""

    operation = "density"

    def time_density(self, *_: object) -> None:
        self.run()
