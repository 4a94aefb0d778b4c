r"""Wei & Schwab (2019), "How noise affects the Hessian spectrum in overparameterized
neural networks": Theorem 1 and Corollary 2.1 on the valley toys of §4.2 (Fig. 2b-d).

Conventions (ours; the paper's text was not available when this was written, so
the prediction below is re-derived from the statement of Theorem 1)
---------------------------------------------------------------------------
Toy loss ``L = sum_i a_i(y) x_i^2`` (``hessbench.landscapes.ValleyToy``; no 1/2, so the
non-degenerate Hessian on the floor is ``H_nd = diag(2 a(y))``). One step is SGD with
additive Gaussian gradient noise restricted to the non-degenerate coordinates:

    theta_{t+1} = theta_t - eta (grad L(theta_t) + xi_t),    xi_t ~ N(0, C(y_t)) on x, 0 on y,

* SGD-like noise (issue Eq. 5/10):  ``C = sigma^2 H_nd(y) = sigma^2 diag(2 a(y))``;
* isotropic noise:                  ``C = sigma_iso^2 I_k``.

The noise enters as ``eta * xi`` (a minibatch gradient with covariance C), not as
``sqrt(eta) xi`` (an SDE discretisation): under the latter convention every rate
below is divided by ``eta``. ``Tr H`` and ``log det H_nd`` are evaluated at the
floor point ``(0, y)``; off the floor the full trace differs by
``sum_i x_i^2 Lap a_i(y) = O(eta sigma^2)``, a stationary offset that cancels in
changes measured after equilibration (and is exactly 0 for the |.| toy).

Leading-order prediction (Theorem 1's proof, re-derived)
--------------------------------------------------------
1. Fast coordinates, exact: ``x_{i,t+1} = (1 - 2 eta a_i) x_{i,t} - eta xi_{i,t}``. With y
   frozen this is AR(1) with stationary variance
   ``v_i = eta^2 c_i / (1 - (1 - 2 eta a_i)^2) = eta c_i / (4 a_i (1 - eta a_i))``, ``c_i = C_ii``:
   SGD-like ``v_i = eta sigma^2 / (2 (1 - eta a_i))``; isotropic
   ``v_i = eta sigma_iso^2 / (4 a_i (1 - eta a_i))``.
2. Slow coordinates, exact and noise-free: ``y_{t+1} = y_t - eta sum_i x_{i,t}^2 grad a_i(y_t)``
   (the third-derivative term, ``grad a_i = (1/2) d/dy H_ii``). Averaging over the
   fast variable: ``E[dy] = -eta sum_i v_i grad a_i``.
3. To first order in ``dy``, with ``Tr H = 2 sum_i a_i`` and ``log det = sum_i log 2 a_i``:
   SGD-like, ``v_i -> eta sigma^2 / 2``:
   ``E[d Tr H] = -(eta^2 sigma^2 / 4) |grad_y Tr H|^2 <= 0``          (Theorem 1)
   isotropic, ``v_i -> eta sigma_iso^2 / (4 a_i)``:
   ``E[d log det H_nd] = -(eta^2 sigma_iso^2 / 4) |grad_y log det H_nd|^2 <= 0``   (Cor. 2.1)
   per step, with equality iff the gradient vanishes or there is no noise (GD).
   The neglected terms are relative ``O(eta a_i)`` (the ``1 - eta a_i`` factor) and
   ``O(|dy|)``.

For the |.| toy (Fig. 2b) in the region t3 + t4 > 0, t3 + 2 t4 > 0,
``grad_y Tr H = 2 (2, 3)``: ``E[d Tr H] = -13 eta^2 sigma^2`` per step, constant along the
path, so the change over M steps is linear in eta^2 with slope ``-13 M sigma^2``.

Hyper-parameters (chosen from the formulas above before any claim verdict):
largest ``eta a_max <= 0.06`` so the O(eta a) correction stays small, and the total
drift over equilibration + measurement keeps every chain far from the kinks
(|.| toy) and from ``a_2 -> 0`` (exp toy, isotropic noise).
"""
from __future__ import annotations

from typing import Any

import torch

from hessbench.experiments.registry import Measurement, experiment, with_defaults
from hessbench.landscapes import (WEI_SCHWAB_ABS, WEI_SCHWAB_EXP, ValleyToy, valley_floor_logdet,
                                  valley_floor_trace)
from hessbench.utils import seeded_generator

__all__ = ["NOISES", "valley_sgd", "stationary_variance", "mean_drift", "leading_order_path"]

NOISES = ("hessian", "isotropic")
DTYPE = torch.float64


def _check_noise(noise: str) -> None:
    if noise not in NOISES:
        raise ValueError(f"noise must be one of {NOISES}, got {noise!r}")


def _noise_variance(noise: str, a: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Diagonal ``c_i`` of C: ``sigma^2 * 2 a_i`` (C = sigma^2 H_nd) or ``sigma^2`` (isotropic)."""
    s2 = (sigma * sigma)[:, None]
    return s2 * 2.0 * a.clamp(min=0.0) if noise == "hessian" else s2.expand_as(a)


def valley_sgd(toy: ValleyToy, y0: torch.Tensor, eta: torch.Tensor, sigma: torch.Tensor, *,
               noise: str, steps: int, record: list[int], seed: int) -> torch.Tensor:
    """Run independent noisy-SGD chains from ``(x, y) = (0, y0)``; return ``y`` at ``record`` steps.

    ``eta`` and ``sigma`` have one entry per chain (shape ``(B,)``), ``y0`` shape ``(m,)``.
    Returns shape ``(len(record), B, m)``; step 0 is the initial point.
    """
    _check_noise(noise)
    if eta.ndim != 1 or eta.shape != sigma.shape:
        raise ValueError(f"eta and sigma must be 1-D of equal length (one per chain), "
                         f"got {tuple(eta.shape)} and {tuple(sigma.shape)}")
    if y0.shape != (toy.n_degenerate,):
        raise ValueError(f"y0 must have shape ({toy.n_degenerate},), got {tuple(y0.shape)}")
    if sorted(set(record)) != list(record) or not record or record[0] < 0 or record[-1] > steps:
        raise ValueError(f"record must be strictly increasing steps in [0, {steps}], got {record}")
    gen = seeded_generator(seed, eta.device)
    chains = eta.shape[0]
    x = eta.new_zeros(chains, toy.n_nondegenerate)
    y = y0.to(eta).expand(chains, -1).clone()
    wanted, out = set(record), []
    e, w = eta[:, None], toy.form_matrix(y)
    for t in range(steps + 1):
        if t in wanted:
            out.append(y.clone())
        if t == steps:
            break
        a, da, _ = toy.profile(y @ w.T)
        # standard normals drawn in float32 (5x faster on CPU), used in float64
        z = torch.randn(x.shape, generator=gen, dtype=torch.float32, device=x.device).to(x.dtype)
        y = y - e * ((x * x * da) @ w)          # sum_i x_i^2 grad a_i, grad a_i = f_i' w_i
        x = x - e * (2.0 * a * x + _noise_variance(noise, a, sigma).sqrt() * z)
    return torch.stack(out)


def stationary_variance(noise: str, a: torch.Tensor, eta: float, sigma: float, *,
                        leading: bool = True) -> torch.Tensor:
    """``E[x_i^2]`` of the frozen-y AR(1) (step 1 above).

    ``leading`` drops the ``1 / (1 - eta a)`` factor.
    """
    _check_noise(noise)
    # eta c / (4 a) with c = 2 sigma^2 a (SGD-like) or sigma^2 (isotropic)
    if noise == "hessian":
        v = torch.full_like(a, eta * sigma ** 2 / 2.0)
    else:
        v = eta * sigma ** 2 / (4.0 * a)
    return v if leading else v / (1.0 - eta * a)


def mean_drift(toy: ValleyToy, y: torch.Tensor, eta: float, sigma: float, noise: str, *,
               leading: bool = True) -> torch.Tensor:
    """``E[dy] = -eta sum_i v_i grad a_i(y)`` per step (step 2 above), shape ``(B, m)``."""
    a, grad_a, _ = toy.coefficients(toy.check_y(y))
    v = stationary_variance(noise, a, eta, sigma, leading=leading)
    return -eta * torch.einsum("bi,bij->bj", v, grad_a)


def leading_order_path(toy: ValleyToy, y0: torch.Tensor, eta: float, sigma: float, noise: str,
                       steps: int) -> torch.Tensor:
    """The deterministic path ``y_{t+1} = y_t + E[dy](y_t)``, shape ``(steps + 1, m)``."""
    ys = [y0.to(DTYPE)[None]]
    for _ in range(steps):
        ys.append(ys[-1] + mean_drift(toy, ys[-1], eta, sigma, noise))
    return torch.cat(ys)


def trace_gradient(toy: ValleyToy, y: torch.Tensor) -> torch.Tensor:
    """``grad_y Tr H(0, y) = 2 sum_i grad a_i(y)``, shape ``(B, m)``."""
    _, grad_a, _ = toy.coefficients(toy.check_y(y))
    return 2.0 * grad_a.sum(dim=1)


def _group_means(values: torch.Tensor, groups: int) -> list[float]:
    """Means of ``groups`` equal blocks of i.i.d. chains (i.i.d. samples for a t-bound)."""
    if values.numel() % groups:
        raise ValueError(f"chains ({values.numel()}) must be a multiple of groups ({groups})")
    return values.reshape(groups, -1).mean(dim=1).cpu().tolist()


# --- Part 1: rate proportional to eta^2 (Fig. 2b) ---------------------------------

RATE_DEFAULTS: dict[str, Any] = {
    "eta": [0.002, 0.004, 0.008, 0.012, 0.016, 0.02],  # spans 10x; eta * a_max <= 0.06
    "sigma": 0.5, "y0": [1.0, 1.0], "equilibrate": 1000, "measure": 1000, "chains": 10000,
}

RATE_METRICS = ["eta", "eta_sq", "trace_change", "trace_change_stderr", "predicted_change",
                "fit_slope", "fit_intercept", "fit_r2", "predicted_slope", "slope_ratio",
                "kink_crossings"]


def plot_rate(records: list[dict[str, Any]]) -> Any:
    """Fig. 2b: mean trace change over the measurement window against eta^2, with fits."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 3.6))
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
    ax.set_xlabel(r"$\eta^2$")
    ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 0))
    ax.set_ylabel(r"$\Delta\,\mathrm{Tr}\,H$ over window")
    ax.set_title("Wei & Schwab Fig. 2b: trace change under SGD-like noise")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


@experiment("wei_schwab_trace_rate", figure=plot_rate, metrics=RATE_METRICS)
def wei_schwab_trace_rate(params: dict[str, Any], seed: int, device: torch.device) -> Measurement:
    """Mean change of Tr H over ``measure`` steps after ``equilibrate`` steps, per eta,
    on the |.| toy with C = sigma^2 H_nd; all etas and chains in one vectorised batch."""
    p = with_defaults("wei_schwab_trace_rate", RATE_DEFAULTS, params)
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
    slope, intercept = torch.linalg.lstsq(torch.stack([x, torch.ones_like(x)], 1), mean[:, None]
                                          ).solution[:, 0].tolist()
    r2 = 1.0 - ((mean - slope * x - intercept) ** 2).sum() / ((mean - mean.mean()) ** 2).sum()
    grad_tr = trace_gradient(toy, y0[None])[0]
    predicted_slope = -int(p["measure"]) * float(p["sigma"]) ** 2 / 4.0 * float(grad_tr @ grad_tr)
    metrics = {
        "eta": etas.cpu().tolist(), "eta_sq": x.cpu().tolist(),
        "trace_change": mean.cpu().tolist(), "trace_change_stderr": stderr.cpu().tolist(),
        "predicted_change": (predicted_slope * x).cpu().tolist(),
        "fit_slope": slope, "fit_intercept": intercept, "fit_r2": float(r2),
        "predicted_slope": predicted_slope, "slope_ratio": slope / predicted_slope,
        "kink_crossings": kinks,
    }
    return Measurement(metrics=metrics)


# --- Part 2: the noise structure selects what decreases (Fig. 2c-d) ----------------

STRUCTURE_DEFAULTS: dict[str, Any] = {
    "eta": 0.01, "sigma": 0.5, "y0": [1.0, 0.5], "equilibrate": 1000, "measure": 2000,
    "chains": 10000, "groups": 50, "record_every": 20,
}

STRUCTURE_METRICS = [f"{q}_change_{n}" for q in ("trace", "logdet") for n in ("sgd", "iso")] + [
    f"{q}_change_{n}_mean" for q in ("trace", "logdet") for n in ("sgd", "iso")] + [
    f"{q}_change_{n}_predicted" for q in ("trace", "logdet") for n in ("sgd", "iso")] + [
    "sigma_iso"]


def plot_structure(records: list[dict[str, Any]]) -> Any:
    """Fig. 2c-d: mean Tr H and log det H_nd against step for both noises (theory dashed)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.6))
    axes = fig.subplots(1, 2)
    for ax, q, label in zip(axes, ("trace", "logdet"), (r"Tr $H$", r"log det $H_{nd}$")):
        for rec in records:
            fd = rec["figure_data"]
            for noise, colour in (("sgd", "C0"), ("iso", "C1")):
                ax.plot(fd["steps"], fd[f"{q}_{noise}"], colour, lw=1,
                        label=f"{noise} (seed {rec['seed']})")
                ax.plot(fd["steps"], fd[f"{q}_{noise}_theory"], colour, ls="--", lw=1)
        ax.axvline(records[0]["figure_data"]["equilibrate"], color="grey", lw=0.5)
        ax.set_xlabel("step")
        ax.set_ylabel(f"mean {label} (dashed: leading order)")
        ax.legend(fontsize=7)
    axes[0].set_title("Fig. 2c: trace")
    axes[1].set_title("Fig. 2d: log-determinant")
    fig.tight_layout()
    return fig


@experiment("wei_schwab_noise_structure", figure=plot_structure, metrics=STRUCTURE_METRICS)
def wei_schwab_noise_structure(params: dict[str, Any], seed: int,
                               device: torch.device) -> Measurement:
    """Exp toy from one initial point under C = sigma^2 H_nd and under isotropic noise.

    The isotropic scale is matched to equal total noise at the start,
    ``k sigma_iso^2 = Tr C = sigma^2 Tr H_nd(y0)``. Changes are taken over the
    ``measure`` steps after ``equilibrate``; per quantity the metric is the list of
    ``groups`` means over disjoint blocks of i.i.d. chains.
    """
    p = with_defaults("wei_schwab_noise_structure", STRUCTURE_DEFAULTS, params)
    toy, chains = WEI_SCHWAB_EXP, int(p["chains"])
    eta, sigma = float(p["eta"]), float(p["sigma"])
    y0 = torch.tensor(p["y0"], dtype=DTYPE, device=device)
    start, stop, every = int(p["equilibrate"]), int(p["equilibrate"]) + int(p["measure"]), int(
        p["record_every"])
    sigma_iso = sigma * (valley_floor_trace(toy, y0[None]).item() / toy.n_nondegenerate) ** 0.5
    record = sorted(set(range(0, stop + 1, every)) | {start, stop})
    i0, i1 = record.index(start), record.index(stop)
    quantity = {"trace": valley_floor_trace, "logdet": valley_floor_logdet}
    metrics: dict[str, Any] = {"sigma_iso": sigma_iso}
    figure_data: dict[str, Any] = {"steps": record, "equilibrate": start}
    for n, (noise, s) in enumerate((("sgd", sigma), ("iso", sigma_iso))):
        kind = "hessian" if noise == "sgd" else "isotropic"
        ys = valley_sgd(toy, y0, torch.full((chains,), eta, dtype=DTYPE, device=device),
                        torch.full((chains,), s, dtype=DTYPE, device=device),
                        noise=kind, steps=stop, record=record, seed=seed * len(NOISES) + n)
        theory = leading_order_path(toy, y0, eta, s, kind, stop)[record]
        for q, fn in quantity.items():
            vals = fn(toy, ys.reshape(-1, 2)).reshape(len(record), chains)
            change = vals[i1] - vals[i0]
            th = fn(toy, theory)
            metrics[f"{q}_change_{noise}"] = _group_means(change, int(p["groups"]))
            metrics[f"{q}_change_{noise}_mean"] = change.mean().item()
            metrics[f"{q}_change_{noise}_predicted"] = (th[i1] - th[i0]).item()
            figure_data[f"{q}_{noise}"] = vals.mean(dim=1).cpu().tolist()
            figure_data[f"{q}_{noise}_theory"] = th.cpu().tolist()
    return Measurement(metrics=metrics, figure_data=figure_data)
