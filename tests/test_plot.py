"""hessbench.plot: the functions draw into the given Axes or a new figure and return it."""
from __future__ import annotations

import pytest
import torch
from matplotlib.figure import Figure

import hessbench as hb
from hessbench.plot import plot_density, plot_top_eigenvalues


def _sym(n: int) -> torch.Tensor:
    a = torch.randn(n, n, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return a + a.T


def test_plot_density_returns_axes() -> None:
    d = hb.spectral_density(_sym(40), num_probes=2, lanczos_steps=12)
    ax = plot_density(d)
    assert ax.figure is not None and ax.get_yscale() == "log"
    [line] = ax.get_lines()
    assert len(line.get_xdata()) == 1000 and ax.get_xlabel() == "eigenvalue"
    given = Figure().add_subplot()
    assert plot_density(d, given, log=False, color="red") is given


def test_plot_top_eigenvalues_returns_axes() -> None:
    r = hb.eigsh(_sym(40), k=4)
    ax = plot_top_eigenvalues(r)
    assert ax.get_xlabel() == "rank" and "which=LA" in ax.get_title()
    assert plot_top_eigenvalues(r, log=True).get_yscale() == "log"


def test_plot_refuses_the_wrong_result() -> None:
    r = hb.eigsh(_sym(10), k=2)
    with pytest.raises(TypeError, match="expects a DensityResult, got EigResult"):
        plot_density(r)
