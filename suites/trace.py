"""Hessian trace estimates on the fixed workloads: ``hb.trace`` by Hutch++ with 100
matvecs (Meyer et al. 2021) and PyHessian's ``trace()`` (Hutchinson 1989, stopping on a
relative change < 1e-3 of the running mean)."""
from __future__ import annotations

from ._common import Solver


class Trace(Solver):
    """One trace estimate with each implementation's settings."""

    operation = "trace"

    def time_trace(self, *_: object) -> None:
        self.run()
