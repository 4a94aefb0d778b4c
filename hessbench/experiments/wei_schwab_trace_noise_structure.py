r"""Wei & Schwab, Corollary 2.1 on a valley toy (§4.2, Fig. 2c-d): the structure of the
noise selects what decreases.

From one initial point, under two noises (conventions and the leading-order derivation:
:mod:`hessbench.experiments.valley_sgd`):

* SGD-like, ``C = sigma^2 H_nd``: Theorem 1, ``E[d Tr H] = -(eta^2 sigma^2 / 4)
  |grad_y Tr H|^2 <= 0``, the trace decreases;
* isotropic, ``C = sigma_iso^2 I``: Corollary 2.1, ``E[d log det H_nd] =
  -(eta^2 sigma_iso^2 / 4) |grad_y log det H_nd|^2 <= 0``, the log-determinant decreases.

Which quantity each noise selects is only visible where the two are anti-correlated
(lowering one raises the other), as the paper says its toy was designed to be. The
default toy ``trace_logdet_tradeoff`` (ours, :data:`hessbench.landscapes.TRACE_LOGDET_TRADEOFF`)
has that property; the printed ``wei_schwab_exp`` toy does not (on it any diagonal noise
lowers both quantities to leading order), and is kept selectable as ``toy``.

The isotropic scale matches the total noise at the start, ``k sigma_iso^2 = Tr C =
sigma^2 Tr H_nd(y0)``. ``swap_noises`` runs each label with the other noise (the
control: the selection must follow the noise, not the label). Per noise and quantity
(Tr H, log det H_nd at the floor point) the change over ``measure`` steps after
``equilibrate`` is reported as ``groups`` means over disjoint blocks of i.i.d. chains
(samples for a confidence bound), their overall mean, and the change along the
deterministic leading-order path.

References
----------
M. Wei and D. J. Schwab, "How noise affects the Hessian spectrum in overparameterized
neural networks", ICLR 2020: §2 (Theorem 1), §3 (Theorem 2, Corollary 2.1), §4.2 (Fig. 2c-d).
"""
from __future__ import annotations

from typing import Any

import torch

from hessbench.experiments.registry import Measurement, experiment
from hessbench.experiments.valley_sgd import DTYPE, NOISES, leading_order_path, valley_sgd
from hessbench.landscapes import (TRACE_LOGDET_TRADEOFF, WEI_SCHWAB_EXP, ValleyToy,
                                  valley_floor_logdet, valley_floor_trace)

TOYS: dict[str, ValleyToy] = {t.name: t for t in (TRACE_LOGDET_TRADEOFF, WEI_SCHWAB_EXP)}

DEFAULTS: dict[str, Any] = {
    "toy": TRACE_LOGDET_TRADEOFF.name, "eta": 0.01, "sigma": 0.5, "y0": [0.0],
    "equilibrate": 1000, "measure": 2000, "chains": 10000, "groups": 50, "record_every": 20,
    "swap_noises": False,
}

METRICS = [f"{q}_change_{n}" for q in ("trace", "logdet") for n in ("sgd", "iso")] + [
    f"{q}_change_{n}_mean" for q in ("trace", "logdet") for n in ("sgd", "iso")] + [
    f"{q}_change_{n}_predicted" for q in ("trace", "logdet") for n in ("sgd", "iso")] + [
    "sigma_iso"]


def _group_means(values: torch.Tensor, groups: int) -> list[float]:
    """Means of ``groups`` equal blocks of i.i.d. chains (i.i.d. samples for a t-bound)."""
    if values.numel() % groups:
        raise ValueError(f"chains ({values.numel()}) must be a multiple of groups ({groups})")
    return values.reshape(groups, -1).mean(dim=1).cpu().tolist()


def plot_structure(records: list[dict[str, Any]]) -> Any:
    """Fig. 2c-d: mean Tr H and log det H_nd against step for both noises (theory dashed)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.6), layout="tight")
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
    return fig


@experiment("wei_schwab_trace_noise_structure", figure=plot_structure, metrics=METRICS,
            defaults=DEFAULTS)
def wei_schwab_trace_noise_structure(p: dict[str, Any], seed: int,
                                     device: torch.device) -> Measurement:
    """Changes of Tr H and log det H_nd on a valley toy under C = sigma^2 H_nd and under
    isotropic noise of the same total at the start (module doc)."""
    if p["toy"] not in TOYS:
        raise ValueError(f"toy must be one of {sorted(TOYS)}, got {p['toy']!r}")
    toy, chains = TOYS[p["toy"]], int(p["chains"])
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
    runs = [("hessian", sigma), ("isotropic", sigma_iso)]
    if p["swap_noises"]:
        runs.reverse()
    for n, (noise, (kind, s)) in enumerate(zip(("sgd", "iso"), runs)):
        ys = valley_sgd(toy, y0, torch.full((chains,), eta, dtype=DTYPE, device=device),
                        torch.full((chains,), s, dtype=DTYPE, device=device),
                        noise=kind, steps=stop, record=record, seed=seed * len(NOISES) + n)
        theory = leading_order_path(toy, y0, eta, s, kind, stop)[record]
        for q, fn in quantity.items():
            vals = fn(toy, ys.reshape(-1, toy.n_degenerate)).reshape(len(record), chains)
            change = vals[i1] - vals[i0]
            th = fn(toy, theory)
            metrics[f"{q}_change_{noise}"] = _group_means(change, int(p["groups"]))
            metrics[f"{q}_change_{noise}_mean"] = change.mean().item()
            metrics[f"{q}_change_{noise}_predicted"] = (th[i1] - th[i0]).item()
            figure_data[f"{q}_{noise}"] = vals.mean(dim=1).cpu().tolist()
            figure_data[f"{q}_{noise}_theory"] = th.cpu().tolist()
    return Measurement(metrics=metrics, figure_data=figure_data)
