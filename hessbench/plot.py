"""The plots people draw by hand from results, with matplotlib.

* :func:`plot_density` -- the spectral density of a :class:`~hessbench.results.DensityResult`.
* :func:`plot_top_eigenvalues` -- the eigenvalues of an :class:`~hessbench.results.EigResult`
  by rank.

Each draws into ``ax`` when given, else into a new figure (``matplotlib.figure.Figure``,
no pyplot state), and returns the Axes (its figure is ``ax.figure``).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from hessbench.results import DensityResult, EigResult

__all__ = ["plot_density", "plot_top_eigenvalues"]


def _axes(ax: Any) -> Any:
    if ax is not None:
        return ax
    from matplotlib.figure import Figure

    return Figure(figsize=(5, 3.5), layout="constrained").add_subplot()


def plot_density(result: DensityResult, ax: Any = None, *, grid: np.ndarray | None = None,
                 sigma: float | None = None, log: bool = True, **line: Any) -> Any:
    """The broadened spectral density :meth:`DensityResult.density` (default grid and
    width) against the eigenvalue; a log density axis by default, as in Ghorbani et al.
    (2019). ``line`` goes to ``ax.plot``."""
    if not isinstance(result, DensityResult):
        raise TypeError(f"plot_density expects a DensityResult, got {type(result).__name__}")
    ax = _axes(ax)
    sigma = result.default_sigma() if sigma is None else sigma
    grid = result.default_grid(sigma=sigma) if grid is None else np.asarray(grid)
    density = result.density(grid, sigma)
    if log:
        density = np.maximum(density, np.finfo(np.float64).tiny)
        ax.set_yscale("log")
    ax.plot(grid, density, **line)
    ax.set_xlabel("eigenvalue")
    ax.set_ylabel(f"density (Gaussian width {sigma:.3g})")
    ax.set_title(f"spectral density ({result.nodes.shape[0]} probes, "
                 f"{result.nodes.shape[1]} Lanczos steps)")
    return ax


def plot_top_eigenvalues(result: EigResult, ax: Any = None, *, log: bool = False,
                         **markers: Any) -> Any:
    """The eigenvalues against their rank (position in ``result.values``: 1 is the largest
    for ``which="LA"``, the smallest for ``"SA"``), residuals as error bars; ``log`` plots
    |value| on a log axis. ``markers`` go to ``ax.errorbar``."""
    if not isinstance(result, EigResult):
        raise TypeError(f"plot_top_eigenvalues expects an EigResult, got "
                        f"{type(result).__name__}")
    ax = _axes(ax)
    values = np.abs(result.values) if log else result.values
    ranks = np.arange(1, len(values) + 1)
    ax.errorbar(ranks, values, yerr=result.residuals, fmt=markers.pop("fmt", "o"), **markers)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("rank")
    ax.set_ylabel("|eigenvalue|" if log else "eigenvalue")
    ax.set_title(f"eigenvalues by rank (which={result.which}, "
                 f"{'converged' if result.converged else 'NOT converged'})")
    return ax
