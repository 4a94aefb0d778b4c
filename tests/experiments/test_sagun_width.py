"""sagun_width: the per-rank change statistic in closed form, the arms (same data and
initialisation, widths x input scales), a Hessian window against the dense reference,
determinism, validation, the claim file and the figure (tiny sizes; the claim itself runs
under ``pytest claims``)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from hessbench.claims.spec import load_claim
from hessbench.experiments import sagun_width as sw
from tests.experiment_helpers import assert_rejects, record, registered

CPU = torch.device("cpu")
CLAIM = Path(__file__).resolve().parents[2] / "claims" / "sagun-width-invariance.toml"
TINY = {"num_samples": 60, "widths": [3, 6], "steps": 50, "top_m": 22, "spectrum": "exact"}


def test_rank_change_closed_form():
    spectra = np.array([[4.0, 2.0, 0.0, -1.0], [2.0, 2.0, 0.0, 1.0]])
    np.testing.assert_allclose(sw.rank_change(spectra), [0.5, 0.0, 0.0, 2.0])


def test_change_stats_scaling_and_invariance():
    rng = np.random.default_rng(0)
    base = np.sort(rng.uniform(0.1, 1.0, 30))[::-1]
    # every arm scales the whole spectrum: outliers and bulk change alike, ratio 1
    out, bulk, _ = sw.change_stats(np.stack([base, 2 * base]), 10)
    assert out == pytest.approx(0.5) and bulk == pytest.approx(0.5)
    # the top 10 fixed, the bulk halved: outliers do not change
    other = base.copy()
    other[10:] /= 2
    out, bulk, _ = sw.change_stats(np.stack([base, other]), 10)
    assert out == 0.0 and bulk == pytest.approx(0.5)
    with pytest.raises(ValueError, match="ranks"):
        sw.change_stats(np.stack([base[:10], base[:10]]), 10)


@pytest.fixture(scope="module")
def tiny_run():
    return sw.sagun_width(TINY, 3, CPU)


def test_metrics_arms_and_determinism(tiny_run):
    m = tiny_run.metrics
    assert set(m) == set(sw.METRICS)
    assert m["arm_widths"] == [3, 6] and m["arm_input_scales"] == [1.0, 1.0]
    assert m["num_params"] == [(64 + 1) * h + (h + 1) * 10 for h in (3, 6)]
    assert len(m["rank_change"]) == 22 and np.shape(m["top_eigenvalues"]) == (2, 10)
    ev = np.asarray(tiny_run.figure_data["eigenvalues"])
    r = sw.rank_change(ev)
    assert m["outlier_change"] == pytest.approx(r[:10].mean())
    assert m["bulk_change"] == pytest.approx(r[10:].mean())
    assert m["change_ratio"] == pytest.approx(m["outlier_change"] / m["bulk_change"])
    assert np.all(np.diff(ev, axis=1) <= 0)  # descending windows
    assert m["eos_ratio"] == pytest.approx([lm * 0.1 / 2 for lm in m["lambda_max"]])
    assert sw.sagun_width(TINY, 3, CPU).metrics == m


def test_lanczos_window_matches_exact(tiny_run):
    lanczos = sw.sagun_width({**TINY, "spectrum": "lanczos"}, 3, CPU)
    np.testing.assert_allclose(lanczos.figure_data["eigenvalues"],
                               tiny_run.figure_data["eigenvalues"], rtol=1e-6, atol=1e-9)


def test_input_scale_arms_share_the_width():
    m = sw.sagun_width({**TINY, "widths": [4], "input_scales": [0.5, 1.0]}, 0, CPU).metrics
    assert m["arm_widths"] == [4, 4] and m["arm_input_scales"] == [0.5, 1.0]
    assert m["num_params"][0] == m["num_params"][1]


@pytest.mark.parametrize("params, match", [
    ({"widths": [3]}, "2 arms"), ({"input_scales": [0.0, 1.0]}, "input_scales"),
    ({"top_m": 12}, "top_m"), ({"spectrum": "dense"}, "spectrum"), ({"typo": 1}, "unknown"),
])
def test_bad_params_raise(params, match):
    assert_rejects(sw.sagun_width, {**TINY, **params}, match)


def test_claim_file_and_figure(tiny_run):
    claim = load_claim(CLAIM)
    registered(claim.experiment, sw.sagun_width, sw.METRICS)
    assert [c.name for c in claim.controls] == ["input-scale"]
    for profile in ("smoke", "paper"):
        setup = claim.setup(profile)
        assert setup.params["widths"] == [10, 30, 50, 70] and len(setup.seeds) >= 3
    assert claim.setup("paper").params["top_m"] == 120  # the paper's Fig. 3 window
    fig = sw.plot_width([record(tiny_run, TINY), record(tiny_run, TINY, seed=1)])
    assert isinstance(fig, Figure) and "Sagun" in fig._suptitle.get_text()
    assert all(ax.get_xlabel() for ax in fig.axes)
