r"""Wei & Schwab, Theorem 1 on the |.| valley toy (§4.2, Fig. 2b): the trace falls at a rate
proportional to ``eta^2``.

Toy ``L = |t3 + t4| t1^2 + |t3 + 2 t4| t2^2`` (``hessbench.landscapes.WEI_SCHWAB_ABS``)
under SGD-like noise ``C = sigma^2 H_nd`` (conventions and the leading-order derivation:
:mod:`hessbench.experiments.valley_sgd`). In the region t3 + t4 > 0, t3 + 2 t4 > 0,
``grad_y Tr H = 2 (2, 3)``, so Theorem 1's rate is

    E[d Tr H] = -(eta^2 sigma^2 / 4) |grad_y Tr H|^2 = -13 eta^2 sigma^2   per step,

constant along the path: the change over M steps is linear in ``eta^2`` with slope
``-13 M sigma^2``. Every eta runs ``chains`` independent chains from ``(0, y0)``; the
change of Tr H over ``measure`` steps after ``equilibrate`` steps is averaged over them
and fitted by least squares against ``eta^2`` (:func:`hessbench.stats.linear_fit`).

Hyper-parameters (chosen from the formulas above): largest ``eta a_max <= 0.06`` so the
O(eta a) correction stays small, and the total drift over equilibration + measurement
keeps every chain far from the kinks (``kink_crossings`` counts the chains that cross one).

References
----------
M. Wei and D. J. Schwab, "How noise affects the Hessian spectrum in overparameterized
neural networks", ICLR 2020: §2 (Theorem 1), §4.2 (Fig. 2b).
"""
from __future__ import annotations

import math

from typing import Any

import torch

from hessbench import stats
from hessbench.experiments.registry import Measurement, experiment
from hessbench.experiments.valley_sgd import DTYPE, trace_gradient, valley_sgd
from hessbench.landscapes import WEI_SCHWAB_ABS, valley_floor_trace

DEFAULTS: dict[str, Any] = {
    "eta": [0.002, 0.004, 0.008, 0.012, 0.016, 0.02],  # spans 10x; eta * a_max <= 0.06
    "sigma": 0.5, "y0": [1.0, 1.0], "equilibrate": 1000, "measure": 1000, "chains": 10000,
}

METRICS = ["eta", "eta_sq", "trace_change", "trace_change_stderr", "predicted_change",
           "fit_slope", "fit_intercept", "fit_r2", "predicted_slope", "slope_ratio",
           "kink_crossings"]


def plot_rate(records: list[dict[str, Any]]) -> Any:
    """Fig. 2b: mean trace change over the measurement window against eta^2, with fits."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 3.6), layout="tight")
    ax = fig.add_subplot()
    for rec in records:
        m = rec["metrics"]
        x = torch.tensor(m["eta_sq"])
        ax.errorbar(m["eta_sq"], m["trace_change"], yerr=m["trace_change_stderr"], fmt="o", ms=4,
                    label=f"simulation, seed {rec['seed']}")
        ax.plot(x, m["fit_slope"] * x + m["fit_intercept"], lw=1,
                label=f"fit: slope {m['fit_slope']:.3g}, $R^2$ {m['fit_r2']:.4f}")
    m = records[0]["metrics"]
    x = torch.tensor([0.0, max(m["eta_sq"])])
    ax.plot(x, m["predicted_slope"] * x, "k--", lw=1,
            label=f"leading order: slope {m['predicted_slope']:.3g}")
    ax.set(xlabel=r"$\eta^2$", ylabel=r"$\Delta\,\mathrm{Tr}\,H$ over window",
           title="Wei & Schwab Fig. 2b: trace change under SGD-like noise")
    ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 0))
    ax.legend(fontsize=7)
    return fig


@experiment("wei_schwab_trace_rate", figure=plot_rate, metrics=METRICS, defaults=DEFAULTS)
def wei_schwab_trace_rate(p: dict[str, Any], seed: int, device: torch.device) -> Measurement:
    """Mean change of Tr H over ``measure`` steps after ``equilibrate`` steps, per eta,
    on the |.| toy with C = sigma^2 H_nd; all etas and chains in one vectorised batch."""
    toy, chains = WEI_SCHWAB_ABS, int(p["chains"])
    etas = torch.tensor(p["eta"], dtype=DTYPE, device=device)
    if etas.ndim != 1 or len(etas) < 2 or bool((etas <= 0).any()):
        raise ValueError(f"eta must be a list of >= 2 positive learning rates, got {p['eta']}")
    eta = etas.repeat_interleave(chains)
    sigma = torch.full_like(eta, float(p["sigma"]))
    y0 = torch.tensor(p["y0"], dtype=DTYPE, device=device)
    start, stop = int(p["equilibrate"]), int(p["equilibrate"]) + int(p["measure"])
    ys = valley_sgd(toy, y0, eta, sigma, noise="hessian", steps=stop, record=[0, start, stop],
                    seed=seed)
    traces = valley_floor_trace(toy, ys.reshape(-1, 2)).reshape(3, len(etas), chains)
    change = traces[2] - traces[1]
    signs = torch.sign(ys @ torch.tensor([[1.0, 1.0], [1.0, 2.0]], dtype=DTYPE, device=device).T)
    kinks = int((signs != signs[:1]).any(dim=0).any(dim=-1).sum())
    mean = change.mean(dim=1)
    stderr = change.std(dim=1) / chains ** 0.5
    x = etas * etas
    fit = stats.linear_fit(x.cpu().tolist(), mean.cpu().tolist(), min_points=2)
    grad_tr = trace_gradient(toy, y0[None])[0]
    predicted_slope = -int(p["measure"]) * float(p["sigma"]) ** 2 / 4.0 * float(grad_tr @ grad_tr)
    metrics = {
        "eta": etas.cpu().tolist(), "eta_sq": x.cpu().tolist(),
        "trace_change": mean.cpu().tolist(), "trace_change_stderr": stderr.cpu().tolist(),
        "predicted_change": (predicted_slope * x).cpu().tolist(),
        "fit_slope": fit.slope, "fit_intercept": fit.intercept, "fit_r2": fit.r2,
        "predicted_slope": predicted_slope,
        "slope_ratio": fit.slope / predicted_slope if predicted_slope else math.nan,
        "kink_crossings": kinks,
    }
    return Measurement(metrics=metrics)
