"""hessbench: paper claims about neural-network Hessians as tests, on a fast Hessian core.

Public API (see ARCHITECTURE.md)::

    import hessbench as hb
    op = hb.hessian(model, loss_fn, data)        # CurvatureOperator (also ggn, fisher,
    r = hb.eigsh(op, k=5)                        #   gradient_covariance)
    t = hb.trace(op)                             #   xtrace by default
    d = hb.spectral_density(op)
    ev = hb.spectrum(op)
"""
from __future__ import annotations

from hessbench.convergence import ConvergenceWarning, NotConvergedError
from hessbench.linalg import eigsh, power_iteration, spectral_density, spectrum, trace
from hessbench.minimize import minimize
from hessbench.operators import (CurvatureOperator, as_operator, fisher, ggn,
                                 gradient_covariance, hessian)
from hessbench.results import DensityResult, EigResult, MinimizeResult, TraceResult

__version__ = "0.1.0"

__all__ = ["CurvatureOperator", "as_operator", "hessian", "ggn", "fisher", "gradient_covariance",
           "eigsh", "power_iteration", "trace", "spectral_density", "spectrum", "EigResult",
           "TraceResult", "DensityResult", "ConvergenceWarning", "NotConvergedError",
           "minimize", "MinimizeResult"]
