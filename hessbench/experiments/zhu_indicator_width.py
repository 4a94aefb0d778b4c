r"""Zhu et al. (ICML 2019) Prop. 1-2, §5.2, Fig. 4: Tr(H Sigma_sgd) against isotropic noise.

Setting (Prop. 2; as in the authors' released code github.com/uuujf/SGDNoise,
OneHiddenLayer/gd.py):

* data: N = 1000 points x ~ U([-2, 2]^2), label y = 1 if x_1 >= x_2 else 0
  (linearly separable);
* model: f(x) = sum_j a_j relu(w_j . x + b_j), trainable (w_j, b_j), fixed output
  weights a_j = +1 for the first half of the hidden units and -1 for the rest;
  D = 3 * width parameters, initialised U(-sqrt(3/D), sqrt(3/D)) (TensorFlow's
  default Glorot-uniform on the flat parameter vector, as in the released code);
* loss: the clipped mean-square loss L = (1/N) sum_i (clip(f(x_i), delta, 1 - delta) - y_i)^2,
  delta = 0.001;
* training: full-batch Adam, lr 1e-3, 31 epochs of 10 steps, lr decayed linearly
  over the last 10 epochs (lr (31 - e) / 10 in epoch e >= 21).

Measured after the epochs listed in ``eval_epochs``: Sigma = the SGD covariance of
batch size 10 (``hb.gradient_covariance``, centred, with replacement; the released
code estimates it from 100 sampled minibatches), the Hessian H, the indicator
Tr(H Sigma) and the isotropic reference Tr(H Sigma_iso) = Tr(H) Tr(Sigma) / D;
ratio = Tr(H Sigma) / Tr(H Sigma_iso) (independent of the batch-size scale). Per seed,
``log_ratio_width_slope`` is the least-squares slope of log ratio against log width (Eq. 17
predicts growth like a power of D) and ``min_train_accuracy`` the smallest training
accuracy over the widths (Prop. 2(2) holds near a minimum that fits the data).
``noise="anti_aligned"`` replaces Sigma by :func:`anti_aligned` (its spectrum on H's
eigenvectors in reverse order): the negative control of Prop. 1's alignment condition.

Hessian: f is piecewise linear in the parameters and the clipped square loss is
piecewise quadratic in f, so almost everywhere the Hessian equals the Gauss-Newton
matrix H = (2/N) sum_{i unclipped} J_i^T J_i, J_i = d f(x_i) / d theta. It is built
from per-sample Jacobians (one D x D product; a dense Hessian from D HVPs would take
about a minute at width 512 on one CPU core). Every run checks the identity against
the core's dense Hessian (``hb.hessian``) at the widths <= ``hessian_check_max_width``
(metric ``hessian_identity_error``).

References
----------
Z. Zhu, J. Wu, B. Yu, L. Wu and J. Ma, "The Anisotropic Noise in Stochastic Gradient
Descent: Its Behavior of Escaping from Sharp Minima and Regularization Effects", ICML 2019:
§3.2 (Prop. 1), §4 (Prop. 2), §5.2 and Fig. 4.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

import hessbench as hb
from hessbench import stats
from hessbench.experiments.registry import Measurement, experiment
from hessbench.noise import alignment_coefficient, escape_indicator, isotropic_indicator
from hessbench.problem import LossFn, Problem
from hessbench.utils import seeded_generator

DEFAULTS: dict[str, Any] = {
    "widths": [32, 128, 512], "n_points": 1000, "delta": 1e-3, "lr": 1e-3, "epochs": 31,
    "steps_per_epoch": 10, "decay_from_epoch": 21, "batch_size": 10,
    "eval_epochs": [0, 10, 20, 30], "hessian_check_max_width": 32, "noise": "sgd",
}
NOISES = ("sgd", "anti_aligned")
WIDTHS = (32, 128, 512)
METRICS = (["hessian_identity_error", "log_ratio_width_slope", "min_train_accuracy"]
           + [f"{m}_w{w}" for w in WIDTHS for m in
              ("ratio", "tr_h_sigma", "tr_h_sigma_iso", "alignment", "train_accuracy", "train_loss",
               "ratio_curve", "tr_h_sigma_curve", "tr_h_sigma_iso_curve")])


class FixedOutputReLU(nn.Module):
    """One hidden ReLU layer with a fixed +1/-1 output layer (Zhu et al. Prop. 2)."""

    def __init__(self, width: int, *, generator: torch.Generator, dtype: torch.dtype,
                 device: torch.device) -> None:
        super().__init__()
        if width < 2 or width % 2:
            raise ValueError("width must be an even int >= 2 (half +1, half -1 outputs), "
                             f"got {width}")
        limit = math.sqrt(3.0 / (3 * width))
        self.weight = nn.Parameter(
            (2 * torch.rand(2, width, generator=generator, dtype=dtype, device=device) - 1) * limit)
        self.bias = nn.Parameter(
            (2 * torch.rand(width, generator=generator, dtype=dtype, device=device) - 1) * limit)
        signs = torch.cat([torch.ones(width // 2), -torch.ones(width // 2)])
        self.register_buffer("out", signs.to(dtype=dtype, device=device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x @ self.weight + self.bias) @ self.out


def clipped_square_loss(delta: float) -> LossFn:
    """``(1/N) sum (clip(f, delta, 1 - delta) - y)^2`` (Prop. 2)."""
    def loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return ((outputs.clamp(delta, 1 - delta) - targets) ** 2).mean()
    return loss


def gauss_newton(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor,
                 delta: float) -> torch.Tensor:
    """``(2/N) sum_{i: delta < f_i < 1 - delta} J_i^T J_i`` from per-sample output gradients
    (the clipped square loss's Hessian: its output Hessian is 2 inside the clip, 0 outside)."""
    prob = Problem(model, clipped_square_loss(delta), (inputs, targets))
    j = prob.per_sample_jacobians(inputs)[:, 0, :]
    with torch.no_grad():
        out = model(inputs)
    inside = ((out > delta) & (out < 1 - delta)).to(j.dtype)
    return 2.0 * (j * inside[:, None]).T @ j / len(inputs)


def _data(n: int, generator: torch.Generator,
          device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    x = 4 * torch.rand(n, 2, generator=generator, dtype=torch.float64, device=device) - 2
    return x, (x[:, 0] >= x[:, 1]).to(torch.float64)


def _measure(model: nn.Module, loss_fn: LossFn, x: torch.Tensor, y: torch.Tensor,
             p: dict[str, Any]) -> dict[str, Any]:
    h = gauss_newton(model, x, y, float(p["delta"]))
    sigma = hb.gradient_covariance(model, loss_fn, (x, y), batch_size=int(p["batch_size"])).dense()
    if p["noise"] == "anti_aligned":
        sigma = anti_aligned(h, sigma)
    with torch.no_grad():
        out = model(x)
    return {"tr_h_sigma": escape_indicator(h, sigma).item(),
            "tr_h_sigma_iso": isotropic_indicator(h, sigma).item(),
            "alignment": alignment_coefficient(h, sigma).item(),
            "train_loss": loss_fn(out, y).item(),
            "train_accuracy": ((out > 0.5).to(y.dtype) == y).to(torch.float64).mean().item(),
            "h": h}


def anti_aligned(h: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Sigma's spectrum placed on H's eigenvectors in reverse order (largest noise on the
    flattest direction), trace kept: the negative control of Prop. 1's alignment condition
    (Eq. 16). By Chebyshev's sum inequality Tr(H Sigma_anti) <= Tr H Tr Sigma / D, i.e. the
    indicator ratio is at most 1."""
    _, u = torch.linalg.eigh(h)
    gamma = torch.linalg.eigvalsh(sigma).flip(0)
    return (u * gamma) @ u.T


def plot_indicator(records: list[dict[str, Any]]) -> Any:
    """Fig. 4: Tr(H Sigma) and Tr(H Sigma_iso) over training, one panel per width (first seed
    solid, other seeds faint), and a last panel with what the claim asserts: the final
    ratio Tr(H Sigma) / Tr(H Sigma_iso) against width, per seed, on log-log axes (ratio 1
    dotted)."""
    from matplotlib.figure import Figure

    widths = records[0]["figure_data"]["widths"]
    fig = Figure(figsize=(4 * (len(widths) + 1), 3.6), layout="tight")
    for col, w in enumerate(widths):
        ax = fig.add_subplot(1, len(widths) + 1, col + 1)
        for i, rec in enumerate(records):
            ep = rec["figure_data"]["eval_epochs"]
            m = rec["metrics"]
            alpha = 1.0 if i == 0 else 0.3
            ax.plot(ep, m[f"tr_h_sigma_curve_w{w}"], "o-", color="tab:red", alpha=alpha,
                    label=r"Tr($H\Sigma$)" if i == 0 else None)
            ax.plot(ep, m[f"tr_h_sigma_iso_curve_w{w}"], "s--", color="tab:blue", alpha=alpha,
                    label=r"Tr($H\bar\Sigma$), isotropic" if i == 0 else None)
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel("escape indicator")
        ax.set_title(f"Zhu et al. Fig. 4: {w} hidden units")
        if col == 0:
            ax.legend(fontsize=8)
    ax = fig.add_subplot(1, len(widths) + 1, len(widths) + 1)
    for rec in records:
        ax.plot(widths, [rec["metrics"][f"ratio_w{w}"] for w in widths], "o-",
                label=f"seed {rec['seed']}")
    ax.axhline(1.0, color="k", ls=":", lw=0.8, label="ratio 1 (no advantage)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("hidden units")
    ax.set_ylabel(r"Tr($H\Sigma$) / Tr($H\bar\Sigma$) at the end")
    ax.set_title("asserted: ratio > 1, growing with width")
    ax.legend(fontsize=7)
    return fig


@experiment("zhu_indicator_width", figure=plot_indicator, metrics=METRICS, defaults=DEFAULTS)
def zhu_indicator_width(p: dict[str, Any], seed: int, device: torch.device) -> Measurement:
    """Tr(H Sigma_sgd) / Tr(H Sigma_iso) of trained one-hidden-layer nets of several widths."""
    epochs, eval_epochs = int(p["epochs"]), [int(e) for e in p["eval_epochs"]]
    if not eval_epochs or eval_epochs != sorted(set(eval_epochs)) or eval_epochs[0] < 0 \
            or eval_epochs[-1] != epochs - 1:
        raise ValueError(f"eval_epochs must be increasing epoch indices ending with the last "
                         f"epoch {epochs - 1}, got {eval_epochs}")
    if p["noise"] not in NOISES:
        raise ValueError(f"noise must be one of {NOISES}, got {p['noise']!r}")
    if min(p["widths"]) > p["hessian_check_max_width"]:
        raise ValueError("hessian_check_max_width is below every width: no run would check "
                         "the Gauss-Newton identity against the dense Hessian")
    gen = seeded_generator(seed, device)
    x, y = _data(int(p["n_points"]), gen, device)
    loss_fn = clipped_square_loss(float(p["delta"]))
    metrics: dict[str, Any] = {}
    identity_errors = []
    for width in p["widths"]:
        model = FixedOutputReLU(int(width), generator=gen, dtype=torch.float64, device=device)
        opt = torch.optim.Adam(model.parameters(), lr=float(p["lr"]))
        curves: dict[str, list[float]] = {"tr_h_sigma": [], "tr_h_sigma_iso": []}
        for epoch in range(epochs):
            scale = 1.0 if epoch < p["decay_from_epoch"] else \
                (epochs - epoch) / (epochs - int(p["decay_from_epoch"]))
            for group in opt.param_groups:
                group["lr"] = float(p["lr"]) * scale
            for _ in range(int(p["steps_per_epoch"])):
                opt.zero_grad(set_to_none=True)
                loss_fn(model(x), y).backward()
                opt.step()
            if epoch in eval_epochs:
                m = _measure(model, loss_fn, x, y, p)
                for key in curves:
                    curves[key].append(m[key])
        h = m.pop("h")
        if width <= p["hessian_check_max_width"]:
            dense = hb.hessian(model, loss_fn, (x, y)).dense()
            identity_errors.append(((dense - h).norm() / dense.norm()).item())
        for key, value in m.items():
            metrics[f"{key}_w{width}"] = value
        metrics[f"ratio_w{width}"] = m["tr_h_sigma"] / m["tr_h_sigma_iso"]
        metrics[f"tr_h_sigma_curve_w{width}"] = curves["tr_h_sigma"]
        metrics[f"tr_h_sigma_iso_curve_w{width}"] = curves["tr_h_sigma_iso"]
        metrics[f"ratio_curve_w{width}"] = [a / b for a, b in zip(curves["tr_h_sigma"],
                                                                  curves["tr_h_sigma_iso"])]
    metrics["hessian_identity_error"] = max(identity_errors)
    # Growth with width (Eq. 17: the ratio grows like a power of D): the least-squares slope
    # of log ratio against log width, one number per seed for a confidence bound over seeds.
    metrics["min_train_accuracy"] = min(metrics[f"train_accuracy_w{w}"] for w in p["widths"])
    ratios = [metrics[f"ratio_w{w}"] for w in p["widths"]]
    metrics["log_ratio_width_slope"] = stats.linear_fit(
        [math.log(w) for w in p["widths"]], [math.log(r) for r in ratios],
        min_points=2).slope if min(ratios) > 0 else math.nan
    return Measurement(metrics=metrics,
                       figure_data={"widths": list(p["widths"]), "eval_epochs": eval_epochs})
