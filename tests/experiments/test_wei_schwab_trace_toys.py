"""Wei & Schwab toy dynamics: the leading-order derivation checked against the
simulator (Monte Carlo) and against autograd."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings, strategies as st

from hessbench.experiments.registry import REGISTRY
from hessbench.experiments.valley_sgd import leading_order_path, mean_drift, valley_sgd
from hessbench.experiments.wei_schwab_trace_noise_structure import \
    wei_schwab_trace_noise_structure
from hessbench.experiments.wei_schwab_trace_rate import wei_schwab_trace_rate
from hessbench.landscapes import (TRACE_LOGDET_TRADEOFF, WEI_SCHWAB_ABS, WEI_SCHWAB_EXP,
                                  valley_floor_logdet, valley_floor_trace)
from tests.experiment_helpers import record

F64 = torch.float64
CPU = torch.device("cpu")


def _simulated_drift(toy, y0, eta, sigma, noise, chains=8000, burn=100, window=400, seed=0):
    """Mean per-step dy over ``window`` steps after ``burn``, and its standard error."""
    e = torch.full((chains,), eta, dtype=F64)
    ys = valley_sgd(toy, torch.tensor(y0, dtype=F64), e, torch.full_like(e, sigma), noise=noise,
                    steps=burn + window, record=[burn, burn + window], seed=seed)
    dy = (ys[1] - ys[0]) / window
    return dy.mean(0), dy.std(0) / chains ** 0.5


@pytest.mark.parametrize("toy, y0, noise", [(WEI_SCHWAB_ABS, [1.0, 1.0], "hessian"),
                                            (WEI_SCHWAB_EXP, [1.0, 0.5], "hessian"),
                                            (WEI_SCHWAB_EXP, [1.0, 0.5], "isotropic")])
def test_simulated_drift_matches_exact_stationary_formula(toy, y0, noise) -> None:
    """E[dy] = -eta sum_i v_i grad a_i with the exact AR(1) variance v_i
    (frozen y): the simulator and the derivation agree within Monte Carlo error,
    and the O(eta a) correction separates it from the leading order (eta a ~ 0.1-0.4)."""
    eta, sigma = 0.05, 0.1  # small sigma: y moves < 1% over the window, so "frozen y" holds
    y = torch.tensor([y0], dtype=F64)
    exact = mean_drift(toy, y, eta, sigma, noise, leading=False)[0]
    leading = mean_drift(toy, y, eta, sigma, noise)[0]
    sim, se = _simulated_drift(toy, y0, eta, sigma, noise)
    tol = 4 * se + 5e-3 * exact.abs()  # 4 standard errors + 0.5% for the slow drift of y
    assert ((sim - exact).abs() <= tol).all(), (sim, exact, se)
    assert torch.linalg.norm(sim - leading) > 2 * torch.linalg.norm(tol), (sim, leading)


def test_leading_order_trace_rate_of_abs_toy_is_minus_13_eta2_sigma2() -> None:
    """Theorem 1 for the |.| toy: grad Tr H = 2 (2, 3), so d Tr H = -13 eta^2 sigma^2 per step."""
    eta, sigma, steps = 0.01, 0.3, 500
    path = leading_order_path(WEI_SCHWAB_ABS, torch.tensor([1.0, 1.0], dtype=F64), eta, sigma,
                              "hessian", steps)
    tr = valley_floor_trace(WEI_SCHWAB_ABS, path)
    assert (tr[-1] - tr[0]).item() == pytest.approx(-13 * eta ** 2 * sigma ** 2 * steps, rel=1e-10)


@settings(max_examples=30, deadline=None, derandomize=True)
@given(t3=st.floats(-1.0, 2.0), t4=st.floats(-1.0, 1.0), eta=st.floats(1e-3, 0.05),
       sigma=st.floats(0.1, 2.0))
def test_drift_rates_equal_minus_squared_gradient_norms(t3, t4, eta, sigma) -> None:
    """Leading order: E[d Tr] = -(eta^2 s^2 / 4)|grad Tr|^2 (C = s^2 H) and
    E[d log det] = -(eta^2 s^2 / 4)|grad log det|^2 (C = s^2 I), gradients by autograd."""
    y = torch.tensor([[t3, t4]], dtype=F64, requires_grad=True)
    if (WEI_SCHWAB_EXP.coefficients(y.detach())[0] <= 0.05).any():
        return  # floor is not a minimum there
    for noise, fn in (("hessian", valley_floor_trace), ("isotropic", valley_floor_logdet)):
        (g,) = torch.autograd.grad(fn(WEI_SCHWAB_EXP, y).sum(), y)
        rate = (g * mean_drift(WEI_SCHWAB_EXP, y.detach(), eta, sigma, noise)).sum()
        assert rate.item() == pytest.approx(-(eta * sigma) ** 2 / 4 * (g * g).sum().item(),
                                            rel=1e-12)


def test_no_noise_means_no_drift() -> None:
    """Equality case of Theorem 1: without noise (GD) the floor point does not move."""
    e = torch.full((3,), 0.01, dtype=F64)
    ys = valley_sgd(WEI_SCHWAB_EXP, torch.tensor([1.0, 0.5], dtype=F64), e, torch.zeros_like(e),
                    noise="hessian", steps=50, record=[0, 50], seed=0)
    assert torch.equal(ys[0], ys[1])


def test_trace_rate_without_noise_reports_no_change_and_no_slope_ratio() -> None:
    """The GD control of the rate claim: zero change at every eta, and the ratio to a zero
    prediction is nan (not a division error)."""
    m = wei_schwab_trace_rate({"sigma": 0.0, "chains": 10}, 0, CPU).metrics
    assert m["trace_change"] == [0.0] * len(m["trace_change"])
    assert m["predicted_slope"] == 0.0 and m["slope_ratio"] != m["slope_ratio"]


def test_simulation_is_seeded() -> None:
    e = torch.full((4,), 0.01, dtype=F64)
    def run(seed: int) -> torch.Tensor:
        return valley_sgd(WEI_SCHWAB_ABS, torch.tensor([1.0, 1.0], dtype=F64), e,
                          torch.full_like(e, 0.5), noise="isotropic", steps=20, record=[20],
                          seed=seed)

    assert torch.equal(run(3), run(3))
    assert not torch.equal(run(3), run(4))


@pytest.mark.parametrize("kwargs, match", [
    ({"noise": "pink"}, "noise"),
    ({"record": [5, 2]}, "record"),
    ({"record": [0, 11]}, "record"),
    ({"sigma": torch.ones(3, dtype=F64)}, "eta and sigma"),
    ({"y0": torch.ones(3, dtype=F64)}, "y0"),
])
def test_valley_sgd_rejects_bad_input(kwargs, match) -> None:
    args = {"y0": torch.ones(2, dtype=F64), "eta": torch.full((2,), 0.01, dtype=F64),
            "sigma": torch.ones(2, dtype=F64), "noise": "hessian", "steps": 10,
            "record": [0, 10], "seed": 0, **kwargs}
    with pytest.raises(ValueError, match=match):
        valley_sgd(WEI_SCHWAB_ABS, **args)


@pytest.mark.parametrize("name, func, params", [
    ("wei_schwab_trace_rate", wei_schwab_trace_rate,
     {"eta": [0.005, 0.01], "chains": 20, "equilibrate": 20, "measure": 20}),
    ("wei_schwab_trace_noise_structure", wei_schwab_trace_noise_structure,
     {"chains": 20, "groups": 4, "equilibrate": 20, "measure": 20, "record_every": 7}),
    ("wei_schwab_trace_noise_structure", wei_schwab_trace_noise_structure,
     {"toy": "wei_schwab_exp", "y0": [1.0, 0.5], "chains": 20, "groups": 4, "equilibrate": 20,
      "measure": 20}),
])
def test_experiments_return_declared_metrics_and_draw(name, func, params) -> None:
    m = func(params, 0, CPU)
    exp = REGISTRY[name]
    assert set(m.metrics) == exp.metrics
    assert exp.figure([record(m, params)]).axes


def test_experiment_rejects_unknown_param() -> None:
    with pytest.raises(ValueError, match="unknown params"):
        wei_schwab_trace_rate({"etta": [0.1]}, 0, CPU)


@pytest.mark.parametrize("noise, lowered, raised", [("hessian", valley_floor_trace,
                                                     valley_floor_logdet),
                                                    ("isotropic", valley_floor_logdet,
                                                     valley_floor_trace)])
def test_each_noise_selects_its_quantity_on_the_tradeoff_toy(noise, lowered, raised) -> None:
    """Leading order on the anti-correlated toy: SGD-like noise lowers Tr H and raises log det,
    isotropic noise the reverse (Theorem 1 and Corollary 2.1 select opposite directions)."""
    path = leading_order_path(TRACE_LOGDET_TRADEOFF, torch.tensor([0.0], dtype=F64), 0.01, 0.5,
                              noise, 2000)
    ends = path[[0, -1]]
    assert (lowered(TRACE_LOGDET_TRADEOFF, ends).diff() < 0).all()
    assert (raised(TRACE_LOGDET_TRADEOFF, ends).diff() > 0).all()


def test_swapped_noises_swap_the_predicted_changes() -> None:
    """The control knob: with swap_noises the "sgd" label runs isotropic noise at the matched
    scale and vice versa, so the leading-order predictions trade places exactly."""
    params = {"chains": 4, "groups": 2, "equilibrate": 10, "measure": 10}
    plain = wei_schwab_trace_noise_structure(params, 0, CPU).metrics
    swapped = wei_schwab_trace_noise_structure({**params, "swap_noises": True}, 0, CPU).metrics
    for q in ("trace", "logdet"):
        assert swapped[f"{q}_change_sgd_predicted"] == plain[f"{q}_change_iso_predicted"]
        assert swapped[f"{q}_change_iso_predicted"] == plain[f"{q}_change_sgd_predicted"]


def test_noise_structure_rejects_unknown_toy() -> None:
    with pytest.raises(ValueError, match="toy must be one of"):
        wei_schwab_trace_noise_structure({"toy": "banana"}, 0, CPU)
