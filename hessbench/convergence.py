"""How iterative routines (eigsh, power_iteration, trace, minimize) report a budget that
ended before the tolerance was met: ``on_unconverged="warn"`` (a
:class:`ConvergenceWarning`), ``"raise"`` (:class:`NotConvergedError`) or ``"ignore"``.
Results always carry the residuals / errors, so nothing is hidden either way."""
from __future__ import annotations

import warnings
from typing import Literal

__all__ = ["ConvergenceWarning", "NotConvergedError", "OnUnconverged", "check_policy",
           "report_unconverged"]

OnUnconverged = Literal["warn", "raise", "ignore"]


class ConvergenceWarning(UserWarning):
    """An iterative method ended its budget before meeting its tolerance."""


class NotConvergedError(RuntimeError):
    """Raised instead of :class:`ConvergenceWarning` when ``on_unconverged='raise'``."""


def check_policy(on_unconverged: str) -> None:
    """Reject an unknown ``on_unconverged`` value before any work is done."""
    if on_unconverged not in ("warn", "raise", "ignore"):
        raise ValueError(f"on_unconverged must be 'warn', 'raise' or 'ignore', got {on_unconverged!r}")


def report_unconverged(message: str, on_unconverged: str) -> None:
    """Warn, raise or stay quiet about a non-converged result (the warning points at the
    caller of the routine that calls this)."""
    if on_unconverged == "raise":
        raise NotConvergedError(message)
    if on_unconverged == "warn":
        warnings.warn(message, ConvergenceWarning, stacklevel=3)
