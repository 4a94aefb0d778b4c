"""Wei & Schwab App. A.3 loss-excess experiment: its pieces against exact references."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings, strategies as st

from hessbench.claims.spec import load_claim
from hessbench.experiments.registry import REGISTRY
from hessbench.experiments.wei_schwab_loss_excess import (least_squares_problem, sgd_excess,
                                                          wei_schwab_loss_excess)
from tests.experiment_helpers import record

CPU = torch.device("cpu")
TINY = {"dim": 3, "num_samples": 16, "batch_sizes": [1, 4, 8], "learning_rates": [0.05] * 3,
        "chains": 8, "steps": 20}


def test_least_squares_minimum_solves_the_normal_equations() -> None:
    x, y, w = least_squares_problem(5, 40, 1.0, 3, CPU)
    grad = x.T @ (x @ w - y) / len(y)
    assert grad.abs().max().item() < 1e-12
    x2, y2, w2 = least_squares_problem(5, 40, 1.0, 3, CPU)
    assert torch.equal(x, x2) and torch.equal(y, y2) and torch.equal(w, w2)


@settings(max_examples=15, deadline=None, derandomize=True)
@given(batch=st.integers(1, 12), lr=st.floats(1e-3, 0.2), seed=st.integers(0, 50))
def test_sgd_excess_is_never_negative(batch: int, lr: float, seed: int) -> None:
    """w_hat is the global minimum of the convex loss: every chain's excess is >= 0."""
    x, y, w = least_squares_problem(3, 12, 1.0, seed, CPU)
    ex = sgd_excess(x, y, w, batch_size=batch, lr=lr, chains=5, steps=10, seed=seed)
    assert (ex >= -1e-14).all()


def test_full_batch_sgd_stays_at_the_minimum() -> None:
    """S = M: the batch gradient is the full gradient, 0 at w_hat: no excess (Eq. 11, C = 0)."""
    x, y, w = least_squares_problem(3, 12, 1.0, 0, CPU)
    ex = sgd_excess(x, y, w, batch_size=12, lr=0.1, chains=4, steps=50, seed=0)
    assert ex.abs().max().item() < 1e-14


def test_noise_trace_ratio_is_the_per_sample_gradient_second_moment() -> None:
    """Tr((1/M) sum g_k g_k^T) / Tr H with g_k from autograd of l = (1/2)(x.w - y)^2."""
    m = wei_schwab_loss_excess(TINY, 1, CPU).metrics
    x, y, w = least_squares_problem(3, 16, 1.0, 1, CPU)

    def loss(wv: torch.Tensor, xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        return 0.5 * (xi @ wv - yi) ** 2

    g = torch.func.vmap(torch.func.grad(loss), in_dims=(None, 0, 0))(w, x, y)
    want = float((g * g).sum() / 16) / float(torch.trace(x.T @ x / 16))
    assert m["noise_trace_ratio"] == pytest.approx(want, rel=1e-12)
    assert m["trace_h"] == pytest.approx(float(torch.trace(x.T @ x / 16)), rel=1e-12)


def test_experiment_returns_declared_metrics_and_draws() -> None:
    m = wei_schwab_loss_excess(TINY, 0, CPU)
    assert set(m.metrics) == REGISTRY["wei_schwab_loss_excess"].metrics
    for ex, pred, r in zip(m.metrics["excess"], m.metrics["predicted_excess"],
                           m.metrics["ratio"]):
        assert r == pytest.approx(ex / pred, rel=1e-14)
    assert m.metrics["max_abs_log2_ratio"] == pytest.approx(
        max(abs(math.log2(r)) for r in m.metrics["ratio"]))
    assert m.metrics == wei_schwab_loss_excess(TINY, 0, CPU).metrics   # seeded
    assert REGISTRY["wei_schwab_loss_excess"].figure([record(m, TINY)]).axes


@pytest.mark.parametrize("bad, match", [({"batch_sizes": [1, 2], "learning_rates": [0.1]}, "pair"),
                                        ({"batch_sizes": [16], "learning_rates": [0.1]},
                                         "num_samples"),
                                        ({"num_samples": 3, "batch_sizes": [1],
                                          "learning_rates": [0.1]}, "exceed dim"),
                                        ({"chains": 1}, "chains")])
def test_bad_params_are_rejected(bad: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        wei_schwab_loss_excess({**TINY, **bad}, 0, CPU)


def test_claim_file_loads_with_its_control() -> None:
    claim = load_claim(Path(__file__).parents[2] / "claims" / "wei-schwab-loss-excess.toml")
    assert claim.experiment == "wei_schwab_loss_excess"
    assert [c.name for c in claim.controls] == ["misspecified-noise"]
