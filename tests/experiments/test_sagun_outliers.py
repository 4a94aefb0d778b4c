"""The sagun_outliers experiment: its Hessian window against an independent dense
autograd reference, exact vs Lanczos agreement, determinism, validation, the claim
files and the figure (small sizes; the claim itself runs under ``pytest claims``)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from torch import nn
from torch.func import functional_call

import hessbench as hb
from hessbench.claims.spec import load_claim
from hessbench.data import gaussian_clusters
from hessbench.experiments.registry import get_experiment
from hessbench.experiments.sagun_outliers import METRICS, plot_outliers, sagun_outliers, \
    top_eigenvalues
from hessbench.models import mlp
from hessbench.training import train

CPU = torch.device("cpu")
CLAIMS = Path(__file__).resolve().parents[2] / "claims"
SMALL = {"k": 3, "samples_per_class": 20, "dim": 10, "hidden": [8, 8], "max_steps": 300,
         "top_m": 12}


def reference_spectrum(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """Eigenvalues (descending) of the dense float64 Hessian by torch.autograd.functional."""
    model = model.double()
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])

    def loss(theta: torch.Tensor) -> torch.Tensor:
        chunks = torch.split(theta, [s.numel() for s in shapes])
        params = {n: c.view(s) for n, c, s in zip(names, chunks, shapes)}
        return nn.functional.cross_entropy(functional_call(model, params, (x.double(),)), y)

    H = torch.autograd.functional.hessian(loss, flat)
    return np.linalg.eigvalsh(H.numpy())[::-1]


@pytest.fixture(scope="module")
def trained():
    x, y = gaussian_clusters(3, 20, 10, seed=0)
    model = mlp(10, [8, 8], 3, seed=1)
    train(model, nn.functional.cross_entropy, x, y, lr=0.1, steps=300, seed=2)
    return model, x, y


@pytest.mark.parametrize("method", ["exact", "lanczos"])
def test_top_window_matches_dense_autograd_reference(trained, method):
    model, x, y = trained
    op = hb.hessian(model, nn.functional.cross_entropy, (x, y), dtype=torch.float64)
    window, matvecs = top_eigenvalues(op, 12, method, tol=1e-10, seed=0)
    reference = reference_spectrum(model, x, y)[:12]
    # float64 throughout: agreement to ~1e-9 of the largest eigenvalue
    np.testing.assert_allclose(window, reference, rtol=0, atol=1e-9 * reference[0])
    assert matvecs > 0


def test_exact_and_lanczos_give_the_same_counts():
    exact = sagun_outliers({**SMALL, "spectrum": "exact"}, 0, CPU).metrics
    lanczos = sagun_outliers({**SMALL, "spectrum": "lanczos"}, 0, CPU).metrics
    for key in ("n_outliers_gap", "n_outliers_ratio", "n_outliers_elbow", "final_loss"):
        assert exact[key] == lanczos[key], key
    np.testing.assert_allclose(lanczos["top_eigenvalues"], exact["top_eigenvalues"],
                               rtol=1e-6)


def test_metrics_shape_and_determinism():
    first = sagun_outliers({**SMALL, "optimizer": "gd"}, 3, CPU)
    again = sagun_outliers({**SMALL, "optimizer": "gd"}, 3, CPU)
    other = sagun_outliers({**SMALL, "optimizer": "gd"}, 4, CPU)
    assert set(first.metrics) == set(METRICS)
    assert first.metrics == again.metrics
    assert first.metrics["top_eigenvalues"] != other.metrics["top_eigenvalues"]
    assert len(first.metrics["top_eigenvalues"]) == SMALL["top_m"]  # 2k + 10 = 16 > window
    assert first.metrics["num_samples"] == 60 and first.metrics["train_steps"] <= 300
    assert first.figure_data["k"] == 3 and set(first.figure_data["counts"]) == {
        "gap", "ratio", "elbow"}
    assert len(first.figure_data["eigenvalues"]) == SMALL["top_m"]


@pytest.mark.parametrize("params, match", [
    ({"optimiser": "sgd"}, "unknown params"),
    ({"optimizer": "adam"}, "optimizer"),
    ({"spectrum": "slq"}, "spectrum"),
    ({"input_cov": 0.0}, "input_cov"),
    ({"top_m": 7}, "top_m"),
])
def test_bad_params_raise(params, match):
    with pytest.raises(ValueError, match=match):
        sagun_outliers({**SMALL, **params}, 0, CPU)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_runs_on_cuda():
    metrics = sagun_outliers(SMALL, 0, torch.device("cuda")).metrics
    assert metrics["n_outliers_ratio"] >= 1


@pytest.mark.parametrize("name", ["sagun-outliers", "sagun-outliers-tanh"])
def test_claim_files_load_and_declare_the_counting(name):
    claim = load_claim(CLAIMS / f"{name}.toml")
    assert get_experiment(claim.experiment).metrics == frozenset(METRICS)
    tanh = name == "sagun-outliers-tanh"
    for profile in ("smoke", "paper"):
        setup = claim.setup(profile)
        ks = setup.grid["k"]
        assert setup.params["top_m"] >= 2 * max(ks) + 10  # Fig. 2 window for every k
        # Table 1 reports tanh for GD only
        assert set(setup.grid["optimizer"]) == ({"gd"} if tanh else {"sgd", "gd"})
        assert len(setup.seeds) >= 3
    assert claim.setup("smoke").grid["k"] == ((10,) if tanh else (2, 5, 10))
    assert claim.setup("paper").params["spectrum"] == "exact"
    # the asserted counter: the paper's "above the gap" (Table 1 "gap") for the ReLU claim,
    # the ratio for the tanh finding (its row quotes both)
    counter = "n_outliers_ratio" if tanh else "n_outliers_gap"
    declared = [e for e in claim.expectations if set(e.metric_names) & {
        "n_outliers_gap", "n_outliers_ratio", "n_outliers_elbow"}]
    assert [list(e.metric_names) for e in declared] == [[counter]]
    assert [c.name for c in claim.controls] == (["relu"] if tanh else ["tanh"])


def fake_record(k: int, tested: list[str], seed: int = 0) -> dict:
    values = sorted(np.geomspace(1e-3, 1.0, 2 * k + 12).tolist(), reverse=True)
    return {"point": f"k={k}", "params": {"k": k, "optimizer": "gd"}, "seed": seed,
            "metrics": {}, "tested_metrics": tested,
            "figure_data": {"k": k, "eigenvalues": values,
                            "counts": {"gap": k, "ratio": k + 1, "elbow": 2}}}


@pytest.mark.parametrize("name, counter", [("sagun-outliers", "gap"),
                                           ("sagun-outliers-tanh", "ratio")])
def test_figure_marks_the_count_the_claim_tests(name, counter):
    """The engine hands the figure the metrics the claim asserts; the tested count is
    filled and named in the legend and the title, the others are hollow, "reported"."""
    from hessbench.claims.report import tested_metrics

    claim = load_claim(CLAIMS / f"{name}.toml")
    item = {"kind": "claim", "expect_fail": [],
            "verdicts": [{"name": e.name, "metrics": list(e.metric_names)}
                         for e in claim.expectations]}
    fig = plot_outliers([fake_record(3, tested_metrics(item)),
                         fake_record(5, tested_metrics(item))])
    assert isinstance(fig, Figure)
    assert fig._suptitle.get_text().endswith(f"; tested: the {counter} count")
    legend = fig.axes[-1].get_legend()
    labels = [t.get_text() for t in legend.get_texts()]
    assert f"count ({counter}): TESTED" in labels
    others = [m for m in ("gap", "ratio", "elbow") if m != counter]
    assert all(f"count ({m}): reported" in labels for m in others)
    faces = {line.get_label(): line.get_markerfacecolor() for line in legend.get_lines()}
    assert faces[f"count ({counter}): TESTED"] != "none"
    assert all(faces[f"count ({m}): reported"] == "none" for m in others)


def test_figure_without_a_tested_count_says_so():
    fig = plot_outliers([fake_record(3, ["train_accuracy"])])
    assert fig._suptitle.get_text().endswith("; no count tested")
