"""Sagun et al. (2018), Sec. 3.3, Fig. 4: large-batch vs small-batch Hessian outliers.

"We train a convnet that is composed of 2 convolution layers with relu-maxpool followed
by two fully-connected layers. The training set is a subsampled MNIST with 1K training
examples. The small batch method uses a mini-batch size of 10, and the large-batch one
uses 512. A learning rate for which both algorithms converge is fixed for both LB and
SB. [...] We train until the same number of iterations have been reached. Then, we
calculate the Hessian and the spectrum [...]. The large batch method locates points with
larger positive eigenvalues."

Setup (ours where the paper is silent): scikit-learn's 8x8 digits stand in for MNIST
(``num_samples`` of them, standardised per feature), the convnet
conv3x3(c1)-ReLU-maxpool2, conv3x3(c2)-ReLU-maxpool2, linear(fc)-ReLU, linear(10) with
softmax cross-entropy, plain SGD (no momentum) with one ``lr`` and one number of
``steps`` for both arms, the same data and initialisation for both (a paired
comparison), independent minibatch streams. At the end of each arm: the ``top_m``
largest eigenvalues of the float64 Hessian (Lanczos), and

    outlier_ratio = mean_{i <= k} lambda_i(LB) / mean_{i <= k} lambda_i(SB),

k = 10 outliers (one per class, Sec. 3.1), with its log (paired per seed) and the same
for lambda_max. Premises reported: final train loss and accuracy of both arms (the paper:
"both algorithms converge").

Reference: L. Sagun, U. Evci, V. U. Guney, Y. Dauphin, L. Bottou, "Empirical Analysis of
the Hessian of Over-Parametrized Neural Networks", 2018, Sec. 3.3 (Fig. 4).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

import hessbench as hb
from hessbench.data import digits
from hessbench.experiments.registry import Measurement, experiment
from hessbench.experiments.sagun_outliers import _seeds, top_eigenvalues
from hessbench.models import reinitialize
from hessbench.training import accuracy, train

NUM_CLASSES = 10  # digits
IMAGE = 8

DEFAULTS: dict[str, Any] = {
    "num_samples": 1000, "small_batch": 10, "large_batch": 512, "channels": [8, 16],
    "fc": 32, "lr": 0.05, "steps": 2000, "top_m": 20, "eig_tol": 1e-8,
}

METRICS = ["outlier_ratio", "log_outlier_ratio", "lambda_max_ratio", "top_eigenvalues_small",
           "top_eigenvalues_large", "final_loss_small", "final_loss_large",
           "train_accuracy_small", "train_accuracy_large", "min_train_accuracy",
           "loss_ratio", "num_params"]


def convnet(channels: tuple[int, int] | list[int], fc: int, *, seed: int,
            device: torch.device | str = "cpu") -> nn.Sequential:
    """The paper's convnet on 1 x 8 x 8 images: 2 conv layers with ReLU-maxpool, then two
    fully connected layers (8 -> 4 -> 2 pixels)."""
    c1, c2 = (int(c) for c in channels)
    model = nn.Sequential(
        nn.Unflatten(1, (1, IMAGE, IMAGE)),
        nn.Conv2d(1, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(c2 * (IMAGE // 4) ** 2, int(fc)), nn.ReLU(), nn.Linear(int(fc), NUM_CLASSES),
    )
    return reinitialize(model, seed).to(device)


def _check(p: dict[str, Any]) -> None:
    n = int(p["num_samples"])
    if not 1 <= p["small_batch"] <= n or not 1 <= p["large_batch"] <= n:
        raise ValueError(f"sagun_batch_size: batch sizes must be in [1, {n}], got "
                         f"{p['small_batch']}, {p['large_batch']}")
    if len(p["channels"]) != 2 or p["fc"] < 1:
        raise ValueError(f"sagun_batch_size: channels must be two ints and fc >= 1, got "
                         f"{p['channels']}, {p['fc']}")
    if p["top_m"] <= NUM_CLASSES:
        raise ValueError(f"sagun_batch_size: top_m must exceed k = {NUM_CLASSES}, got "
                         f"{p['top_m']}")


def plot_batch_size(records: list[dict[str, Any]]) -> Any:
    """Sagun et al. Fig. 4: the top eigenvalues of LB and SB (rank on x, value on y), one
    line per seed and arm; the dotted line marks the k outliers."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.2, 3.2), layout="constrained")
    ax = fig.subplots()
    for rec in records:
        fd = rec["figure_data"]
        for arm, color in (("small", "tab:blue"), ("large", "tab:red")):
            ev = np.asarray(fd[arm])
            ax.plot(np.arange(1, ev.size + 1), ev, color=color, lw=0.8, alpha=0.8)
    if records:
        prm = records[0]["params"]
        ax.plot([], [], color="tab:red", label=f"LB (bs = {prm.get('large_batch')})")
        ax.plot([], [], color="tab:blue", label=f"SB (bs = {prm.get('small_batch')})")
    ax.axvline(NUM_CLASSES + 0.5, color="k", ls=":", lw=0.8)
    ax.set_yscale("log", nonpositive="mask")
    ax.set_xlabel("rank")
    ax.set_ylabel("Hessian eigenvalue")
    ax.legend(fontsize=7)
    ax.set_title("Sagun et al. Fig. 4: outliers of LB vs SB (digits convnet)", fontsize=8)
    return fig


@experiment("sagun_batch_size", figure=plot_batch_size, metrics=METRICS, defaults=DEFAULTS)
def sagun_batch_size(p: dict[str, Any], seed: int, device: torch.device) -> Measurement:
    """Train the same convnet from the same start with a small and a large batch."""
    _check(p)
    data_seed, init_seed, batch_seed = _seeds(seed)
    x, y = digits(int(p["num_samples"]), seed=data_seed, device=device)
    loss_fn = nn.functional.cross_entropy
    out: dict[str, dict[str, Any]] = {}
    for arm, offset in (("small", 0), ("large", 1)):
        model = convnet(p["channels"], p["fc"], seed=init_seed, device=device)
        result = train(model, loss_fn, x, y, lr=float(p["lr"]), steps=int(p["steps"]),
                       batch_size=int(p[f"{arm}_batch"]), seed=batch_seed + offset,
                       eval_every=max(int(p["steps"]), 1))
        with torch.no_grad():
            acc = accuracy(model(x), y)
        op = hb.hessian(model, loss_fn, (x, y), dtype=torch.float64)
        window, _ = top_eigenvalues(op, int(p["top_m"]), "lanczos", float(p["eig_tol"]), seed)
        out[arm] = {"ev": window, "loss": result.final_loss, "acc": acc,
                    "num_params": op.num_params}
    small, large = out["small"]["ev"], out["large"]["ev"]
    ratio = float(large[:NUM_CLASSES].mean() / small[:NUM_CLASSES].mean())
    metrics = {
        "outlier_ratio": ratio, "log_outlier_ratio": float(np.log(ratio)),
        "lambda_max_ratio": float(large[0] / small[0]),
        "top_eigenvalues_small": small[:NUM_CLASSES].tolist(),
        "top_eigenvalues_large": large[:NUM_CLASSES].tolist(),
        "final_loss_small": out["small"]["loss"], "final_loss_large": out["large"]["loss"],
        "train_accuracy_small": out["small"]["acc"], "train_accuracy_large": out["large"]["acc"],
        "min_train_accuracy": min(out["small"]["acc"], out["large"]["acc"]),
        "loss_ratio": out["large"]["loss"] / out["small"]["loss"],
        "num_params": out["small"]["num_params"],
    }
    return Measurement(metrics=metrics, figure_data={"small": small.tolist(),
                                                     "large": large.tolist()})
