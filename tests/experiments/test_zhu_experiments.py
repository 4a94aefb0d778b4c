"""The Zhu et al. experiments at toy sizes: metrics, determinism, figures, references."""
from __future__ import annotations

import matplotlib
import pytest
import torch
from scipy import stats as sps

import hessbench as hb
from hessbench.experiments import (zhu_anisotropic_escape, zhu_indicator_width,
                                   zhu_ou_escape_formula)
from hessbench.utils import seeded_generator
from tests.experiment_helpers import record

matplotlib.use("Agg")
CPU = torch.device("cpu")


@pytest.mark.parametrize("k,n", [(0, 10), (3, 10), (10, 10), (57, 500)])
def test_wilson_interval_matches_scipy(k, n):
    ref = sps.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    lo, hi = zhu_anisotropic_escape.wilson_interval(k, n)
    assert lo == pytest.approx(ref.low, abs=1e-6) and hi == pytest.approx(ref.high, abs=1e-6)
    assert lo <= k / n <= hi


def test_escape_experiment_small():
    params = {"chains": 6, "steps": 30, "record_every": 10}
    a = zhu_anisotropic_escape.zhu_anisotropic_escape(params, 0, CPU)
    b = zhu_anisotropic_escape.zhu_anisotropic_escape(params, 0, CPU)
    assert set(a.metrics) == set(zhu_anisotropic_escape.METRICS)
    assert a.metrics == b.metrics
    assert a.metrics["successes_gd"] == 0 and a.metrics["trials"] == 6
    # at the sharp minimum every noise has trace 0.01; the 1st-eigvec one has Tr(H Sigma)
    # = 0.01 lambda_1 ~ 2 (lambda_1 ~ 200), the isotropic one 0.01 (20 + 200) / 2 ~ 1.1
    assert a.metrics["indicator_gd"] == 0.0
    assert a.metrics["indicator_gld_1st_eigvec"] == pytest.approx(2.0, rel=0.01)
    assert a.metrics["indicator_gld_const"] == pytest.approx(1.1, rel=0.01)
    assert len(a.figure_data["paths"]["gld_const"]) == 4   # steps 0, 10, 20, 30
    # Fig. 2's third panel: Tr(H Sigma) at every recorded point of the run shown; at the
    # start it is the start-point indicator of chain 0 (the metric averages all chains)
    ind = a.figure_data["indicators"]
    assert len(ind["gld_const"]) == 4 and ind["gd"] == [0.0] * 4
    assert ind["gld_1st_eigvec"][0] == pytest.approx(2.0, rel=0.01)
    fig = zhu_anisotropic_escape.plot_escape([record(a, params)])
    assert len(fig.axes) == 3
    with pytest.raises(ValueError, match="unknown params"):
        zhu_anisotropic_escape.zhu_anisotropic_escape({"chain": 5}, 0, CPU)


def test_structure_free_escape_gives_every_noisy_dynamic_the_isotropic_noise():
    """The control knob: every noisy dynamic's indicator is GLD const's (the same noise),
    GD stays noiseless, and the draws stay independent per dynamic."""
    params = {"chains": 6, "steps": 30, "record_every": 10, "noise_structure": "isotropic"}
    m = zhu_anisotropic_escape.zhu_anisotropic_escape(params, 0, CPU)
    iso = m.metrics["indicator_gld_const"]
    assert iso == pytest.approx(1.1, rel=0.01) and m.metrics["indicator_gd"] == 0.0
    for kind in ("gld_diag", "gld_leading", "gld_hessian", "gld_1st_eigvec"):
        assert m.metrics[f"indicator_{kind}"] == iso
    paths = m.figure_data["paths"]
    assert paths["gld_const"] != paths["gld_1st_eigvec"]
    with pytest.raises(ValueError, match="noise_structure"):
        zhu_anisotropic_escape.zhu_anisotropic_escape({"noise_structure": "pink"}, 0, CPU)


def test_gauss_newton_equals_dense_hessian_with_clipped_samples():
    gen = seeded_generator(0)
    model = zhu_indicator_width.FixedOutputReLU(6, generator=gen, dtype=torch.float64, device=CPU)
    with torch.no_grad():
        model.weight.mul_(8.0)           # outputs spread over both clipping levels
    x = 4 * torch.rand(40, 2, generator=gen, dtype=torch.float64) - 2
    y = (x[:, 0] >= x[:, 1]).to(torch.float64)
    out = model(x)
    assert bool((out <= 1e-3).any()) and bool(((out > 1e-3) & (out < 1 - 1e-3)).any())
    loss_fn = zhu_indicator_width.clipped_square_loss(1e-3)
    dense = hb.hessian(model, loss_fn, (x, y)).dense()
    gn = zhu_indicator_width.gauss_newton(model, x, y, 1e-3)
    torch.testing.assert_close(gn, dense, rtol=1e-12, atol=1e-12)


def test_fixed_output_relu_validates_width():
    with pytest.raises(ValueError, match="even"):
        zhu_indicator_width.FixedOutputReLU(5, generator=seeded_generator(0), dtype=torch.float64,
                                      device=CPU)


def test_indicator_experiment_small():
    params = {"widths": [4, 8], "n_points": 60, "epochs": 3, "decay_from_epoch": 2,
              "eval_epochs": [0, 2], "hessian_check_max_width": 8}
    m = zhu_indicator_width.zhu_indicator_width(params, 0, CPU)
    assert m.metrics["hessian_identity_error"] < 1e-10
    for w in (4, 8):
        assert m.metrics[f"ratio_w{w}"] == pytest.approx(
            m.metrics[f"tr_h_sigma_w{w}"] / m.metrics[f"tr_h_sigma_iso_w{w}"])
        assert len(m.metrics[f"ratio_curve_w{w}"]) == 2
        assert 0.0 <= m.metrics[f"alignment_w{w}"] <= 1.0 + 1e-12
    fig = zhu_indicator_width.plot_indicator([record(m, params)])
    assert len(fig.axes) == 3   # one panel per width, and the asserted ratio against width
    ratio_line = fig.axes[-1].lines[0]
    assert list(ratio_line.get_ydata()) == [m.metrics["ratio_w4"], m.metrics["ratio_w8"]]
    with pytest.raises(ValueError, match="eval_epochs"):
        zhu_indicator_width.zhu_indicator_width({**params, "eval_epochs": [0, 1]}, 0, CPU)
    with pytest.raises(ValueError, match="hessian_check_max_width"):
        zhu_indicator_width.zhu_indicator_width({**params, "hessian_check_max_width": 2}, 0, CPU)
    with pytest.raises(ValueError, match="noise"):
        zhu_indicator_width.zhu_indicator_width({**params, "noise": "iso"}, 0, CPU)
    assert m.metrics["min_train_accuracy"] == min(m.metrics[f"train_accuracy_w{w}"] for w in (4, 8))


def test_anti_aligned_noise_keeps_the_trace_and_has_ratio_at_most_one():
    """Chebyshev's sum inequality: Sigma's spectrum on H's eigenvectors in reverse order
    gives Tr(H Sigma) <= Tr H Tr Sigma / D."""
    gen = seeded_generator(0)
    a = torch.randn(6, 6, generator=gen, dtype=torch.float64)
    b = torch.randn(6, 6, generator=gen, dtype=torch.float64)
    h, sigma = a @ a.T, b @ b.T
    anti = zhu_indicator_width.anti_aligned(h, sigma)
    assert float(anti.trace()) == pytest.approx(float(sigma.trace()), rel=1e-12)
    torch.testing.assert_close(torch.linalg.eigvalsh(anti), torch.linalg.eigvalsh(sigma))
    assert float((h @ anti).trace()) <= float(h.trace() * sigma.trace()) / 6 + 1e-12


def test_random_problem_spectrum_and_trace():
    h, s = zhu_ou_escape_formula.random_problem(6, 0.5, 5.0, seeded_generator(0), CPU)
    lam = torch.linalg.eigvalsh(h)
    assert float(lam.min()) >= 0.5 - 1e-12 and float(lam.max()) <= 5.0 + 1e-12
    assert float(torch.trace(s)) == pytest.approx(1.0)
    assert float(torch.linalg.eigvalsh(s).min()) > 0
    assert float((h @ s - s @ h).abs().max()) > 1e-3      # generic: H and Sigma do not commute


def test_ou_experiment_small():
    params = {"dim": 3, "chains": 4000, "step_times_lambda_max": 0.01}
    m = zhu_ou_escape_formula.zhu_ou_escape_formula(params, 0, CPU)
    assert set(m.metrics) == set(zhu_ou_escape_formula.METRICS)
    assert m.metrics["steps"] * 0.01 / 5.0 == pytest.approx(m.metrics["t"], rel=0.01)
    assert abs(m.metrics["z_discrete"]) < 4.0      # seeded; a 4-sigma miss would be a bug
    # the first-order term t/2 Tr(H Sigma) over-estimates the saturating Eq. 13
    assert m.metrics["first_order"] > m.metrics["eq13"] > 0
    fig = zhu_ou_escape_formula.plot_ou([record(m, params)])
    assert len(fig.axes) == 1
    with pytest.raises(ValueError, match="lambda_min"):
        zhu_ou_escape_formula.zhu_ou_escape_formula({"lambda_min": 0.0}, 0, CPU)
