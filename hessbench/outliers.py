"""Counting outlier eigenvalues above the bulk of a spectrum.

Sagun et al. (2018), §3.1 and Appendix A Table 1, observe that the Hessian
spectrum of a trained classifier is a bulk near zero plus a few outliers, as
many as there are classes. This module turns "the number of outliers" into
three declared, deterministic counters, all looking only at the *top-m window*:
the m largest eigenvalues sorted in descending order,

    lambda_1 >= lambda_2 >= ... >= lambda_m.

A count ``c`` means "lambda_1..lambda_c are outliers and lambda_{c+1} is the
first bulk eigenvalue"; every counter returns ``1 <= c <= m - 1`` (each one
presupposes a separation inside the window; none can answer "no outliers").

``gap``    largest absolute gap::

               c = argmax_{1 <= i <= m-1} (lambda_i - lambda_{i+1})

``ratio``  largest ratio among the p positive eigenvalues of the window
           (p >= 2 required), i.e. the largest gap of log lambda::

               c = argmax_{1 <= i <= p-1} lambda_i / lambda_{i+1}

``elbow``  the knee of the log-spectrum: map the p positive window eigenvalues to
           the unit square, x_i = (i - 1)/(p - 1),
           y_i = (log lambda_i - log lambda_p)/(log lambda_1 - log lambda_p)
           (y_i = 0 when the window is flat), and take the point farthest below
           the chord from (0, 1) to (1, 0) as the first bulk eigenvalue::

               e = argmax_{2 <= i <= p} (1 - x_i - y_i),     c = e - 1

           ("Kneedle", Satopaa et al. 2011, on the log scale). It recovers k
           planted outliers when the bulk spans less than one x-step vertically
           and the outliers stand more than k/(p-1) above it (see the tests).

Ties go to the smallest count. ``gap`` and ``ratio`` are invariant under
permutation of the input and positive scaling of the spectrum; ``elbow`` too (the
log shift cancels in the normalisation); ``ratio`` and ``elbow`` are the natural
choices when outliers spread over orders of magnitude, ``gap`` undercounts then.

References: Sagun, Evci, Guney, Dauphin & Bottou, "Empirical Analysis of the Hessian of
Over-Parametrized Neural Networks" (2018), §3.1, App. A; Satopaa, Albrecht, Irwin &
Raghavan, "Finding a 'Kneedle' in a Haystack", ICDCS Workshops 2011.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["METHODS", "OutlierCount", "count_outliers", "count_all", "top_window"]

METHODS: tuple[str, ...] = ("gap", "ratio", "elbow")


@dataclass(frozen=True)
class OutlierCount:
    """Result of one counter.

    ``window``: the top-m eigenvalues, descending (for ``ratio``/``elbow`` only its
    positive head is used). ``criterion[c - 1]`` is the score of candidate count
    ``c`` (gap, log of the ratio, or chord distance); ``count`` is its first argmax + 1.
    """

    method: str
    count: int
    window: np.ndarray = field(repr=False)
    criterion: np.ndarray = field(repr=False)

    @property
    def margin(self) -> float:
        """Best criterion minus runner-up (0 for a tie; inf with one candidate):
        how decisive the count is."""
        if self.criterion.size < 2:
            return float("inf")
        second, best = np.partition(self.criterion, -2)[-2:]
        return float(best - second)


def top_window(eigenvalues: Any, top_m: int | None = None) -> np.ndarray:
    """The ``top_m`` largest eigenvalues, descending, as float64 numpy.

    Accepts a 1-D numpy array, sequence or torch tensor (any device).
    Raises ``ValueError`` for an empty or non-1-D input, NaN/inf, or
    ``top_m`` outside ``[2, len(eigenvalues)]``; ``TypeError`` for a non-int ``top_m``.
    ``top_m=None`` keeps every eigenvalue.
    """
    if hasattr(eigenvalues, "detach"):  # torch tensor, possibly on cuda
        eigenvalues = eigenvalues.detach().cpu().numpy()
    values = np.asarray(eigenvalues, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"eigenvalues must be a 1-D array, got shape {values.shape}")
    if values.size == 0:
        raise ValueError("eigenvalues is empty; pass the spectrum (at least 2 values)")
    if not np.all(np.isfinite(values)):
        bad = int(np.count_nonzero(~np.isfinite(values)))
        raise ValueError(f"eigenvalues contains {bad} NaN/inf value(s); "
                         "check the Hessian computation (float64, converged eigensolver)")
    n = values.size
    if top_m is None:
        top_m = n
    if not isinstance(top_m, (int, np.integer)) or isinstance(top_m, bool):
        raise TypeError(f"top_m must be an int, got {type(top_m).__name__}")
    if not 2 <= top_m <= n:
        raise ValueError(f"top_m must be in [2, {n}] (the number of eigenvalues), got {top_m}")
    return np.sort(values)[::-1][:top_m].copy()


def _positive_head(window: np.ndarray, method: str) -> np.ndarray:
    positive = window[window > 0]
    if positive.size < 2:
        raise ValueError(f"method {method!r} needs at least 2 positive eigenvalues in the "
                         f"top-{window.size} window, found {positive.size}; "
                         "use method='gap' or a larger top_m")
    return positive


def _criterion(window: np.ndarray, method: str) -> np.ndarray:
    if method == "gap":
        return window[:-1] - window[1:]
    if method == "ratio":
        logs = np.log(_positive_head(window, method))  # log ratios: no overflow
        return logs[:-1] - logs[1:]
    if method == "elbow":
        head = _positive_head(window, method)
        logs = np.log(head)
        span = logs[0] - logs[-1]
        y = (logs - logs[-1]) / span if span > 0 else np.zeros_like(logs)
        x = np.arange(head.size) / (head.size - 1)
        return (1.0 - x - y)[1:]
    raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")


def count_outliers(eigenvalues: Any, method: str = "ratio",
                   top_m: int | None = None) -> OutlierCount:
    """Number of outlier eigenvalues above the bulk by ``method`` ("gap", "ratio" or
    "elbow", see the module docstring), looking at the ``top_m`` largest eigenvalues.

    >>> count_outliers([10.0, 9.0, 8.0, 0.3, 0.2, 0.1], "gap").count
    3
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
    window = top_window(eigenvalues, top_m)
    criterion = _criterion(window, method)
    return OutlierCount(method=method, count=int(np.argmax(criterion)) + 1, window=window,
                        criterion=criterion)


def count_all(eigenvalues: Any, top_m: int | None = None,
              methods: Sequence[str] = METHODS) -> dict[str, OutlierCount]:
    """:func:`count_outliers` for each of ``methods`` on the same window."""
    return {method: count_outliers(eigenvalues, method, top_m) for method in methods}
