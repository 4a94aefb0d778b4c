"""sagun_batch_size: the convnet's shape, the paired arms (same data and start), the ratio
metrics, determinism, validation, the claim file and the figure (tiny sizes; the claim
itself runs under ``pytest claims``)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from hessbench.claims.spec import load_claim
from hessbench.experiments import sagun_batch_size as sb
from tests.experiment_helpers import assert_rejects, record, registered

CPU = torch.device("cpu")
CLAIM = Path(__file__).resolve().parents[2] / "claims" / "sagun-batch-size-outliers.toml"
TINY = {"num_samples": 40, "small_batch": 4, "large_batch": 20, "channels": [2, 3], "fc": 5,
        "steps": 20, "top_m": 12}


def test_convnet_shape_and_seed():
    net = sb.convnet([2, 3], 5, seed=0)
    assert net(torch.zeros(7, 64)).shape == (7, 10)
    n = sum(p.numel() for p in net.parameters())
    assert n == (9 * 1 + 1) * 2 + (9 * 2 + 1) * 3 + (3 * 4 + 1) * 5 + (5 + 1) * 10
    again = sb.convnet([2, 3], 5, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(net.parameters(), again.parameters()))


@pytest.fixture(scope="module")
def tiny_run():
    return sb.sagun_batch_size(TINY, 3, CPU)


def test_metrics_and_determinism(tiny_run):
    m = tiny_run.metrics
    assert set(m) == set(sb.METRICS)
    small, large = np.asarray(m["top_eigenvalues_small"]), np.asarray(m["top_eigenvalues_large"])
    assert m["outlier_ratio"] == pytest.approx(large.mean() / small.mean())
    assert m["log_outlier_ratio"] == pytest.approx(np.log(m["outlier_ratio"]))
    assert m["lambda_max_ratio"] == pytest.approx(large[0] / small[0])
    assert m["loss_ratio"] == pytest.approx(m["final_loss_large"] / m["final_loss_small"])
    assert len(tiny_run.figure_data["small"]) == 12
    assert sb.sagun_batch_size(TINY, 3, CPU).metrics == m


def test_equal_batches_differ_only_by_the_minibatch_stream():
    m = sb.sagun_batch_size({**TINY, "large_batch": 4}, 3, CPU).metrics
    assert m["num_params"] == sb.sagun_batch_size(TINY, 3, CPU).metrics["num_params"]
    assert m["outlier_ratio"] != 1.0  # another stream, another end point
    full = sb.sagun_batch_size({**TINY, "small_batch": 40, "large_batch": 40}, 3, CPU).metrics
    assert full["outlier_ratio"] == pytest.approx(1.0, rel=1e-6)  # GD twice: the same point


@pytest.mark.parametrize("params, match", [
    ({"large_batch": 41}, "batch sizes"), ({"small_batch": 0}, "batch sizes"),
    ({"channels": [2]}, "channels"), ({"top_m": 10}, "top_m"), ({"typo": 1}, "unknown"),
])
def test_bad_params_raise(params, match):
    assert_rejects(sb.sagun_batch_size, {**TINY, **params}, match)


def test_claim_file_and_figure(tiny_run):
    claim = load_claim(CLAIM)
    registered(claim.experiment, sb.sagun_batch_size, sb.METRICS)
    assert [c.name for c in claim.controls] == ["equal-batch"]
    paper = claim.setup("paper").params
    assert (paper["small_batch"], paper["large_batch"], paper["num_samples"]) == (10, 512, 1000)
    for profile in ("smoke", "paper"):
        setup = claim.setup(profile)
        assert setup.params["large_batch"] <= setup.params["num_samples"] and len(setup.seeds) >= 5
    fig = sb.plot_batch_size([record(tiny_run, TINY), record(tiny_run, TINY, seed=1)])
    assert isinstance(fig, Figure) and all(ax.get_xlabel() for ax in fig.axes)
