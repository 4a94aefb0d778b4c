r"""Zhu et al. (ICML 2019) §5.3, Fig. 3 and 5, App. D.3: escaping the sharp minimum that GD
finds on data with partly random labels.

Protocol (the paper's words in ``claims/zhu-sharp-minimum-escape.toml``; ours where the
paper is silent or the data differ):

1. Data: sklearn digits (8x8) in place of FashionMNIST: ``n_train`` training samples of
   which the first ``n_random`` get a uniformly drawn *wrong* label (App. D.3: "200 of
   them with randomly wrong labels"), the remaining digits are the test set.
2. Net: the LeNet-like net of App. D.3 (two conv layers of 10 channels with max-pool and
   ReLU, fc 50, fc 10) with 3x3 padded kernels for 8x8 images
   (``sagun_batch_size.convnet``); softmax cross-entropy.
3. theta*_GD: full-batch GD, lr ``gd_lr``, ``gd_steps`` iterations. At theta*: the
   Fig. 5 premises, i.e. lambda_r / lambda_1 with r = round(140 D / 11330) (the paper's
   rank 140 scaled to our parameter count D; Lanczos to ``eig_tol`` relative residual, in
   the model's float32), Tr(H Sigma_sgd) exactly
   (H applied to every centred per-sample gradient), Tr H (Hutch++, with its standard
   error), indicator_ratio = Tr(H Sigma_sgd) / Tr(H Sigma_iso) with
   Sigma_iso = Tr(Sigma_sgd)/D I, and Fig. 5 (middle)'s a = u_1^T Sigma u_1 Tr H /
   (lambda_1 Tr Sigma).
4. From theta*, each dynamic of ``arms`` runs ``steps`` iterations with lr ``lr``:
   GD and SGD (batch ``batch_size``, drawn without replacement within an epoch, so its
   noise is (N - b)/(N - 1) of Eq. 5's) by :func:`hessbench.training.train`, the GLD kinds
   as theta <- theta - lr grad L + lr eps (Eq. 7), eps from
   :mod:`~hessbench.experiments.zhu_lowrank_noise`; the noise structure (Tr Sigma_sgd,
   its diagonal or top-k, the Hessian's top-k) is re-estimated every ``refresh_every``
   iterations, a fresh eps is drawn every iteration (App. D.3: "we only update Hessian
   matrix every 10 iterations. But add Hessian generated noise every iteration").
   ``noise_structure = "isotropic"`` (the control) makes every arm but GD and GLD const
   draw the GLD dynamic noise (isotropic, the same trace).
5. Escape, read as in Fig. 3 / Fig. 8 (training and test accuracy against iteration from
   theta*): per arm the training-accuracy drop and the test-accuracy gain from theta* to
   the end, the training-loss increase (Def. 1's escaping efficiency) and the expected
   sharpness E L(theta + nu) - L(theta), nu ~ N(0, delta^2 I) (App. D.3, Eq. 88).
   Aggregates over the arms run: the smallest drop / gain of the arms the paper sees
   escape (SGD, GLD leading, GLD Hessian, GLD 1st eigvec(H)) and the largest of those it
   sees trapped (GD, GLD const, GLD dynamic, GLD diag).

Reference: Z. Zhu, J. Wu, B. Yu, L. Wu and J. Ma, "The Anisotropic Noise in Stochastic
Gradient Descent: Its Behavior of Escaping from Sharp Minima and Regularization Effects",
ICML 2019: Table 1, Prop. 1, §5.3 (Fig. 3, Fig. 5), App. C.2 (Fig. 8), App. D.3.
"""
from __future__ import annotations

import functools
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

import hessbench as hb
from hessbench.data import digits
from hessbench.experiments.registry import Measurement, experiment
from hessbench.experiments.sagun_batch_size import convnet
from hessbench.experiments.sagun_outliers import _seeds
from hessbench.experiments.zhu_anisotropic_escape import _noise_seed
from hessbench.experiments.zhu_escape_figure import plot_sharp_minimum_escape
from hessbench.experiments.zhu_lowrank_noise import (NoiseFactor, centred_gradients, noise_factor,
                                                     sgd_trace)
from hessbench.noise import TABLE1_KINDS
from hessbench.problem import LossFn, Problem
from hessbench.training import accuracy, train
from hessbench.utils import seeded_generator

ESCAPING = ("sgd", "gld_leading", "gld_hessian", "gld_1st_eigvec")
STAYING = ("gd", "gld_const", "gld_dynamic", "gld_diag")
STRUCTURES = ("table1", "isotropic")
NUM_CLASSES = 10

DEFAULTS: dict[str, Any] = {
    "n_train": 600, "n_random": 100, "channels": [10, 10], "fc": 50, "gd_lr": 0.1,
    "gd_steps": 3000, "lr": 0.07, "batch_size": 20, "steps": 300, "arms": list(TABLE1_KINDS),
    "noise_structure": "table1", "const_std": 1e-3, "k": 20, "refresh_every": 10,
    "record_every": 10, "noise_eig_tol": 1e-3, "paper_rank": 140, "paper_num_params": 11330,
    "eig_tol": 1e-3, "trace_matvecs": 200, "sharpness_delta": 0.01, "sharpness_samples": 100,
}
PREMISES = ["num_params", "rank", "train_accuracy_at_minimum", "train_loss_at_minimum",
            "test_accuracy_at_minimum", "eig_ratio_rank", "top_eigenvalues", "tr_h",
            "tr_h_stderr", "tr_sigma_sgd", "tr_h_sigma_sgd", "tr_h_sigma_iso", "indicator_ratio",
            "alignment", "expected_sharpness_at_minimum"]
PER_ARM = ["train_accuracy_drop", "test_accuracy_gain", "train_loss_increase",
           "expected_sharpness", "final_test_accuracy"]
AGGREGATES = ["min_train_accuracy_drop_escaping", "min_test_gain_escaping",
              "max_train_accuracy_drop_staying", "max_test_gain_staying"]
METRICS = PREMISES + AGGREGATES + [f"{m}_{k}" for k in TABLE1_KINDS for m in PER_ARM]
LOSS = nn.functional.cross_entropy


def _check(p: dict[str, Any]) -> None:
    arms = list(p["arms"])
    unknown = sorted(set(arms) - set(TABLE1_KINDS))
    if unknown or len(set(arms)) != len(arms):
        raise ValueError(f"zhu_sharp_minimum_escape: arms must be distinct kinds of "
                         f"{TABLE1_KINDS}, got {arms}")
    if not {"gd", "sgd", "gld_const"} <= set(arms) or not {"gld_hessian", "gld_1st_eigvec"} & set(arms):
        raise ValueError("zhu_sharp_minimum_escape: arms must include gd, sgd, gld_const and a "
                         f"Hessian-aligned GLD (gld_hessian or gld_1st_eigvec), got {arms}")
    if p["noise_structure"] not in STRUCTURES:
        raise ValueError(f"zhu_sharp_minimum_escape: noise_structure must be one of "
                         f"{STRUCTURES}, got {p['noise_structure']!r}")
    n, r = int(p["n_train"]), int(p["n_random"])
    if not 0 <= r < n or n > 1797 - 100:
        raise ValueError(f"zhu_sharp_minimum_escape: need 0 <= n_random < n_train <= 1697 "
                         f"(digits has 1797 samples; >= 100 are kept for testing), got "
                         f"n_train={n}, n_random={r}")
    if not 1 <= int(p["batch_size"]) <= n or not 1 <= int(p["k"]) <= n:
        raise ValueError(f"zhu_sharp_minimum_escape: batch_size and k must be in [1, n_train="
                         f"{n}], got {p['batch_size']}, {p['k']}")
    if min(int(p["refresh_every"]), int(p["record_every"]), int(p["steps"])) < 1:
        raise ValueError("zhu_sharp_minimum_escape: steps, refresh_every and record_every "
                         "must be >= 1")


def corrupted_digits(n_train: int, n_random: int, seed: int, device: torch.device
                     ) -> tuple[torch.Tensor, ...]:
    """(x_train, y_train, x_test, y_test): a seeded split of digits whose first
    ``n_random`` training labels are replaced by a uniformly drawn wrong class."""
    x, y = digits(1797, seed=seed, fit_on=n_train, device=device)
    y_train = y[:n_train].clone()
    shift = torch.randint(1, NUM_CLASSES, (n_random,), generator=seeded_generator(seed))
    y_train[:n_random] = (y_train[:n_random] + shift.to(device)) % NUM_CLASSES
    return x[:n_train], y_train, x[n_train:], y[n_train:]


@torch.no_grad()
def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return accuracy(model(x), y)


@torch.no_grad()
def expected_sharpness(model: nn.Module, x: torch.Tensor, y: torch.Tensor, delta: float,
                       samples: int, seed: int, loss_fn: LossFn = LOSS) -> float:
    """(1/M) sum_j L(theta + nu_j) - L(theta), nu_j ~ N(0, delta^2 I) (App. D.3, Eq. 88)."""
    if not delta > 0 or samples < 1:
        raise ValueError(f"expected sharpness needs delta > 0 and samples >= 1, got "
                         f"delta={delta}, samples={samples}")
    params = dict(model.named_parameters())
    gen = seeded_generator(seed, x.device)
    base = float(loss_fn(model(x), y))
    total = 0.0
    for _ in range(samples):
        moved = {k: v + delta * torch.randn(v.shape, generator=gen, dtype=v.dtype,
                                            device=v.device) for k, v in params.items()}
        total += float(loss_fn(functional_call(model, moved, (x,)), y))
    return total / samples - base


def _centred(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return centred_gradients(Problem(model, LOSS, (x, y)).per_sample_gradients(x, y))


def fig5_premises(model: nn.Module, x: torch.Tensor, y: torch.Tensor, p: dict[str, Any],
                  seed: int) -> dict[str, Any]:
    """Fig. 5 at theta*: lambda_r / lambda_1, Tr(H Sigma_sgd), Tr(H Sigma_iso), their ratio
    and the alignment coefficient a (module doc, step 3)."""
    op = hb.hessian(model, LOSS, (x, y))
    d, n, b = op.num_params, len(x), int(p["batch_size"])
    rank = max(2, round(int(p["paper_rank"]) * d / int(p["paper_num_params"])))
    top = hb.eigsh(op, k=rank, tol=float(p["eig_tol"]), seed=seed, on_unconverged="raise")
    c = _centred(model, x, y)
    tr_sigma = sgd_trace(c, b)
    tr_h_sigma = float((c.T * op.matmat(c.T.contiguous())).sum()) / (n * b)
    tr_h = hb.trace(op, method="hutch++", num_matvecs=int(p["trace_matvecs"]), seed=seed)
    u1_sigma_u1 = float(((c @ top.vectors[:, 0].to(c.dtype)) ** 2).sum()) / (n * b)
    iso = tr_h.value * tr_sigma / d
    return {"num_params": d, "rank": rank, "eig_ratio_rank": float(top.values[-1] / top.values[0]),
            "top_eigenvalues": top.values.tolist(), "tr_h": tr_h.value,
            "tr_h_stderr": tr_h.stderr, "tr_sigma_sgd": tr_sigma, "tr_h_sigma_sgd": tr_h_sigma,
            "tr_h_sigma_iso": iso, "indicator_ratio": tr_h_sigma / iso,
            "alignment": u1_sigma_u1 * tr_h.value / (float(top.values[0]) * tr_sigma)}


_MINIMUM_KEYS = ("n_train", "n_random", "channels", "fc", "gd_lr", "gd_steps", "batch_size",
                 "paper_rank", "paper_num_params", "eig_tol", "trace_matvecs",
                 "sharpness_delta", "sharpness_samples")


@functools.lru_cache(maxsize=2)
def _sharp_minimum(key: tuple, seed: int, device: str) -> tuple[dict, tuple, dict[str, Any]]:
    """theta*_GD (a state dict), the data and the premises at theta*, computed once per
    (setting, seed, device) in a process: the claim and its control share them (the
    control changes only the dynamics after theta*)."""
    p = {**dict(zip(_MINIMUM_KEYS, key)), "channels": list(key[2])}
    dev = torch.device(device)
    data_seed, init_seed, _ = _seeds(seed)
    x, y, xt, yt = corrupted_digits(int(p["n_train"]), int(p["n_random"]), data_seed, dev)
    model = convnet(p["channels"], int(p["fc"]), seed=init_seed, device=dev)
    train(model, LOSS, x, y, lr=float(p["gd_lr"]), steps=int(p["gd_steps"]),
          eval_every=int(p["gd_steps"]))
    premises = fig5_premises(model, x, y, p, seed)
    premises.update(
        train_accuracy_at_minimum=_accuracy(model, x, y),
        train_loss_at_minimum=float(LOSS(model(x), y).detach()),
        test_accuracy_at_minimum=_accuracy(model, xt, yt),
        expected_sharpness_at_minimum=expected_sharpness(
            model, x, y, float(p["sharpness_delta"]), int(p["sharpness_samples"]), seed))
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return state, (x, y, xt, yt), premises


def _factor(kind: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor, p: dict[str, Any],
            seed: int) -> NoiseFactor:
    """The noise of ``kind`` at the model's current parameters."""
    centred = _centred(model, x, y)
    values = vectors = None
    if kind in ("gld_hessian", "gld_1st_eigvec"):
        top = hb.eigsh(hb.hessian(model, LOSS, (x, y)), k=1 if kind == "gld_1st_eigvec"
                       else int(p["k"]), tol=float(p["noise_eig_tol"]), seed=seed,
                       on_unconverged="raise")
        values, vectors = torch.as_tensor(top.values.copy()), top.vectors
    return noise_factor(kind, centred, int(p["batch_size"]), k=int(p["k"]),
                        const_std=float(p["const_std"]), hess_values=values,
                        hess_vectors=vectors)


def _gld(kind: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor, p: dict[str, Any],
         seed: int, record) -> None:
    """theta <- theta - lr grad L + lr eps (Eq. 7), the noise re-estimated every
    ``refresh_every`` iterations and drawn afresh every iteration."""
    params = list(model.parameters())
    gen = seeded_generator(seed, x.device)
    lr, factor = float(p["lr"]), None
    for t in range(1, int(p["steps"]) + 1):
        if factor is None or (kind != "gld_const" and (t - 1) % int(p["refresh_every"]) == 0):
            factor = _factor(kind, model, x, y, p, seed + t)
        grads = torch.autograd.grad(LOSS(model(x), y), params)
        step = -lr * torch.cat([g.reshape(-1) for g in grads]) + lr * factor.sample(gen)
        with torch.no_grad():
            nn.utils.vector_to_parameters(nn.utils.parameters_to_vector(params) + step, params)
        record(t)


def run_arm(kind: str, state: dict, data: tuple, p: dict[str, Any], seed: int,
            device: torch.device) -> dict[str, Any]:
    """Run dynamic ``kind`` from theta*; its accuracy curves and end-point figures."""
    x, y, xt, yt = data
    _, init_seed, _ = _seeds(seed)
    model = convnet(p["channels"], int(p["fc"]), seed=init_seed, device=device)
    model.load_state_dict(state)
    drawn = kind if p["noise_structure"] == "table1" or kind in ("gd", "gld_const") \
        else "gld_dynamic"
    curve: dict[str, list] = {"step": [], "train": [], "test": []}

    def record(t: int) -> None:
        if t % int(p["record_every"]) == 0 or t == int(p["steps"]):
            curve["step"].append(t)
            curve["train"].append(_accuracy(model, x, y))
            curve["test"].append(_accuracy(model, xt, yt))

    record(0)
    noise_seed = _noise_seed(seed, TABLE1_KINDS.index(kind))
    if drawn in ("gd", "sgd"):
        train(model, LOSS, x, y, lr=float(p["lr"]), steps=int(p["steps"]), seed=noise_seed,
              batch_size=int(p["batch_size"]) if drawn == "sgd" else None,
              eval_every=int(p["steps"]), on_step=record)
    else:
        _gld(drawn, model, x, y, p, noise_seed, record)
    return {"curve": curve, "loss": float(LOSS(model(x), y).detach()),
            "sharpness": expected_sharpness(model, x, y, float(p["sharpness_delta"]),
                                            int(p["sharpness_samples"]), seed)}


@experiment("zhu_sharp_minimum_escape", figure=plot_sharp_minimum_escape, metrics=METRICS,
            defaults=DEFAULTS)
def zhu_sharp_minimum_escape(p: dict[str, Any], seed: int, device: torch.device) -> Measurement:
    """Which Table 1 dynamics leave GD's sharp minimum on partly mislabelled digits."""
    _check(p)
    key = tuple(tuple(p[k]) if k == "channels" else p[k] for k in _MINIMUM_KEYS)
    state, data, premises = _sharp_minimum(key, seed, str(device))
    metrics: dict[str, Any] = dict(premises)
    curves = {}
    for kind in p["arms"]:
        out = run_arm(kind, state, data, p, seed, device)
        curve = curves[kind] = out["curve"]
        metrics[f"train_accuracy_drop_{kind}"] = curve["train"][0] - curve["train"][-1]
        metrics[f"test_accuracy_gain_{kind}"] = curve["test"][-1] - curve["test"][0]
        metrics[f"train_loss_increase_{kind}"] = out["loss"] - premises["train_loss_at_minimum"]
        metrics[f"expected_sharpness_{kind}"] = out["sharpness"]
        metrics[f"final_test_accuracy_{kind}"] = curve["test"][-1]
    for group, name, reduce in ((ESCAPING, "escaping", min), (STAYING, "staying", max)):
        run = [k for k in p["arms"] if k in group]
        word = "min" if reduce is min else "max"
        metrics[f"{word}_train_accuracy_drop_{name}"] = reduce(
            metrics[f"train_accuracy_drop_{k}"] for k in run)
        metrics[f"{word}_test_gain_{name}"] = reduce(metrics[f"test_accuracy_gain_{k}"] for k in run)
    return Measurement(metrics=metrics, figure_data={
        "curves": curves, "gd_steps": int(p["gd_steps"]), "rank": premises["rank"],
        "noise_structure": p["noise_structure"]})
