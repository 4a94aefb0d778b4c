"""sagun_gauss_newton: H and G against exact references (dense autograd Hessian; G from
per-sample Jacobians in closed form), the rank count and residual norms, validation, the
claim file and the figure (tiny sizes; the claim itself runs under ``hessbench claims run``)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure
from torch.func import functional_call, jacrev

import hessbench as hb
from hessbench.claims.spec import load_claim
from hessbench.data import gaussian_clusters
from hessbench.experiments import sagun_gauss_newton as sg
from hessbench.models import mlp
from tests.experiment_helpers import assert_rejects, record, registered
from tests.reference import flat_params, reference_hessian

CLAIM = Path(__file__).resolve().parents[2] / "claims" / "sagun-gauss-newton.toml"
TINY = {"samples_per_class": 6, "dim": 4, "hidden": [5], "steps": 200}  # M = 31, N = 12


def closed_form_ggn(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(1/N) sum_i sigma'(f_i) grad f_i grad f_i^T by per-sample Jacobians (Eq. 5)."""
    model = model.double()
    names = [k for k, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]

    def f(theta: torch.Tensor) -> torch.Tensor:
        parts = torch.split(theta, [s.numel() for s in shapes])
        return functional_call(model, {k: t.view(s) for k, t, s in zip(names, parts, shapes)},
                               (x.double(),)).squeeze(-1)

    theta = flat_params(model)
    J = jacrev(f)(theta)                      # N x M
    s = torch.sigmoid(f(theta))
    return (J.T * (s * (1 - s))) @ J / len(y)


@pytest.fixture(scope="module")
def net():
    x, y = gaussian_clusters(2, 6, 4, seed=0, dtype=torch.float64)
    model = mlp(4, [5], 1, seed=1, dtype=torch.float64)
    return model, x, y


def test_operators_match_exact_references(net):
    model, x, y = net
    H = hb.hessian(model, sg.logistic_loss, (x, y), dtype=torch.float64).dense()
    G = hb.ggn(model, sg.logistic_loss, (x, y), dtype=torch.float64).dense()
    torch.testing.assert_close(H, reference_hessian(model, sg.logistic_loss, x, y),
                               rtol=0, atol=1e-12)
    torch.testing.assert_close(G, closed_form_ggn(model, x, y), rtol=0, atol=1e-12)
    # Eq. 5's bound: rank(G) <= N
    assert sg.rank(torch.linalg.eigvalsh(G).numpy(), 1e-9) <= len(y)


def test_logistic_loss_closed_form():
    out = torch.tensor([[0.3], [-1.2], [2.0]], dtype=torch.float64)
    y = torch.tensor([1, 0, 1])
    expected = np.mean([np.log1p(np.exp(f)) - t * f for f, t in zip([0.3, -1.2, 2.0], [1, 0, 1])])
    assert float(sg.logistic_loss(out, y)) == pytest.approx(expected, rel=1e-14)


@settings(deadline=None, derandomize=True, max_examples=15)
@given(m=st.integers(2, 12), n=st.integers(1, 12), seed=st.integers(0, 1000))
def test_rank_of_a_product_is_the_smaller_side(m, n, seed):
    A = np.random.default_rng(seed).standard_normal((m, n))
    assert sg.rank(np.linalg.eigvalsh(A @ A.T), 1e-9) == min(m, n)


def test_rank_edge_cases():
    assert sg.rank(np.zeros(4), 1e-9) == 0
    assert sg.rank(np.array([-2.0, 1e-12, 1.0]), 1e-9) == 2


def test_residual_norms_closed_form():
    H = torch.diag(torch.tensor([4.0, 1.0], dtype=torch.float64))
    G = torch.diag(torch.tensor([3.0, 1.0], dtype=torch.float64))
    spec, fro = sg.residual_norms(H, G)
    assert spec == pytest.approx(0.25) and fro == pytest.approx(1 / np.sqrt(17))


@pytest.fixture(scope="module")
def tiny_runs():
    cpu = torch.device("cpu")
    return {name: sg.sagun_gauss_newton({**TINY, **extra}, 3, cpu)
            for name, extra in {"trained": {}, "init": {"steps": 0},
                                "hessian": {"rank_of": "hessian"}}.items()}


def test_metrics_and_determinism(tiny_runs):
    m = tiny_runs["trained"].metrics
    assert set(m) == set(sg.METRICS)
    assert m["num_params"] == 31 and m["num_samples"] == 12 and m["trivial_bound"] == 19
    assert m["rank"] <= 12 and m["trivial"] >= 19 and m["rank_fraction"] == m["rank"] / 12
    assert 0 <= m["residual_rel"] and 0 <= m["top_rel_diff"]
    again = sg.sagun_gauss_newton(TINY, 3, torch.device("cpu")).metrics
    assert again == m
    # the same point, the rank of H counted instead of G's
    h = tiny_runs["hessian"].metrics
    assert h["residual_rel"] == m["residual_rel"] and h["rank"] >= m["rank"]
    # at the initial point the loss is log 2-ish and |l'| about 1/2
    assert tiny_runs["init"].metrics["mean_abs_dloss"] > m["mean_abs_dloss"]


@pytest.mark.parametrize("params, match", [
    ({"steps": -1}, "steps"), ({"lr": 0.0}, "lr"), ({"rank_rtol": 1.5}, "rank_rtol"),
    ({"rank_of": "fisher"}, "rank_of"), ({"hidden": []}, "hidden"), ({"typo": 1}, "unknown"),
])
def test_bad_params_raise(params, match):
    assert_rejects(sg.sagun_gauss_newton, {**TINY, **params}, match)


def test_claim_file_and_figure(tiny_runs):
    claim = load_claim(CLAIM)
    registered(claim.experiment, sg.sagun_gauss_newton, sg.METRICS)
    assert [c.name for c in claim.controls] == ["init", "hessian-rank"]
    for profile in ("smoke", "paper"):
        setup = claim.setup(profile)
        assert len(setup.seeds) >= 3
        sizes = [setup.params["dim"], *setup.params["hidden"], 1]
        m = sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:]))
        assert all(2 * s < m for s in setup.grid["samples_per_class"])  # N < M
    fig = sg.plot_gauss_newton([record(run, {**TINY, "steps": s}) for run, s in
                                ((tiny_runs["trained"], 200), (tiny_runs["init"], 0))])
    assert isinstance(fig, Figure) and "Sagun" in fig._suptitle.get_text()
    assert all(ax.get_xlabel() for ax in fig.axes)
