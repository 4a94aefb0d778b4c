"""ReLU positive-homogeneity rescaling T_alpha of sequential nets and its Jacobian D_alpha.

Dinh, Pascanu, Bengio & Bengio (2017), "Sharp Minima Can Generalize for Deep Nets",
§4 (non-negative homogeneity). A ReLU is positively homogeneous, relu(c z) = c relu(z)
for c > 0, so for a net of K Linear layers with pre-activations z_k = W_k h_{k-1} + b_k
the map

    T_alpha:  W_k -> alpha_k W_k,   b_k -> c_k b_k,   c_k = prod_{j<=k} alpha_j,

with alpha_k > 0 and prod_k alpha_k = 1 multiplies every z_k by c_k (induction on k)
and leaves the output z_K (c_K = 1) -- hence the loss -- unchanged. The bias of layer
k scales with the cumulative product c_k, so the output-layer bias never changes.

T_alpha is linear and diagonal, theta' = D theta with D = diag(d) the Jacobian of T_alpha
(``parameter_scales``; d holds alpha_k on W_k and c_k on b_k, in the flattened order
of ``model.parameters()``). Differentiating the identity L(D theta) = L(theta) gives, at
EVERY theta (not only at minima),

    grad L(T theta) = D^{-1} grad L(theta),    H(T theta) = D^{-1} H(theta) D^{-1}.

Convention: hessbench's D is the Jacobian of T_alpha; the slides' "D_alpha" in
(grad^2 L)(T_alpha theta) = D_alpha (grad^2 L)(theta) D_alpha is our D^{-1}
(for the one-hidden-layer T_alpha(theta1, theta2) = (alpha theta1, alpha^-1 theta2) it is
diag(alpha^-1 I, alpha I)). ``rescaled_hessian`` applies the law;
``count_eigenvalues_above`` counts the eigenvalues of a rescaled Hessian above a threshold
without losing the small ones to its extreme scaling (Dinh et al.'s K-layer theorem).

References: Dinh, Pascanu, Bengio & Bengio, "Sharp Minima Can Generalize For Deep Nets",
ICML 2017, §4 (non-negative homogeneity, the K-layer eigenvalue theorem); Sylvester's law
of inertia (Golub & Van Loan, "Matrix Computations", 4th ed., §8.1).
"""
from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["linear_layers", "layer_alphas", "parameter_scales", "rescale", "rescaled_hessian",
           "layer_sizes", "count_eigenvalues_above"]

# Modules f with f(c x) = c f(x) for every c > 0 (so they commute with the rescaling).
_HOMOGENEOUS = (nn.ReLU, nn.LeakyReLU, nn.Identity, nn.Flatten)


def linear_layers(model: nn.Module, *, homogeneous: bool = True) -> list[nn.Linear]:
    """The Linear layers of a sequential ReLU net, checked to admit the rescaling.

    ``model`` must be an ``nn.Sequential`` of ``nn.Linear`` and positively homogeneous
    modules (ReLU, LeakyReLU, Identity, Flatten), whose parameters are exactly the Linear
    layers' weights and biases. ``homogeneous=False`` accepts any parameter-free module
    between the layers (e.g. Tanh): the parameter map T_alpha is then still defined, but
    it changes the function (a negative control of the symmetry, not a symmetry).
    """
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"the rescaling needs an nn.Sequential of Linear and ReLU layers, "
                        f"got {type(model).__name__}")
    layers = []
    for i, module in enumerate(model):
        if isinstance(module, nn.Linear):
            layers.append(module)
        elif homogeneous and not isinstance(module, _HOMOGENEOUS):
            raise TypeError(f"module {i} ({type(module).__name__}) is not positively homogeneous; "
                            f"the rescaling needs only Linear, ReLU, LeakyReLU, Identity, Flatten")
    if not layers:
        raise ValueError("model has no nn.Linear layer to rescale")
    owned = {id(p) for layer in layers for p in layer.parameters()}
    if any(id(p) not in owned for p in model.parameters()):
        raise ValueError("model has parameters outside its Linear layers; cannot rescale them")
    return layers


def layer_sizes(model: nn.Module, *, homogeneous: bool = True) -> list[int]:
    """n_k: the number of parameters (weight and bias) of each Linear layer k."""
    return [sum(p.numel() for p in layer.parameters())
            for layer in linear_layers(model, homogeneous=homogeneous)]


def layer_alphas(num_layers: int, alpha: float, *, scaled: Sequence[int],
                 compensate: int) -> list[float]:
    """Per-layer factors: ``alpha`` on the layers in ``scaled``, ``alpha^-len(scaled)`` on
    layer ``compensate``, 1 elsewhere (so the product is 1).

    ``scaled=[0], compensate=1`` is Dinh et al.'s T_alpha(theta1, theta2) =
    (alpha theta1, alpha^-1 theta2); ``scaled`` = every layer but k, ``compensate=k`` is the
    rescaling in the proof of their K-layer eigenvalue theorem.
    """
    if num_layers < 2:
        raise ValueError(f"rescaling needs at least 2 layers, got num_layers={num_layers}")
    if not (math.isfinite(alpha) and alpha > 0):
        raise ValueError(f"alpha must be a finite positive number, got {alpha}")
    idx = set(scaled)
    if not idx or len(idx) != len(scaled):
        raise ValueError(f"scaled must list distinct layer indices, got {list(scaled)}")
    if compensate in idx or not all(0 <= k < num_layers for k in (*idx, compensate)):
        raise ValueError(f"layer indices must lie in [0, {num_layers}) and compensate "
                         f"({compensate}) must not be in scaled ({sorted(idx)})")
    alphas = [1.0] * num_layers
    for k in idx:
        alphas[k] = float(alpha)
    alphas[compensate] = float(alpha) ** -len(idx)
    return alphas


def _check_alphas(alphas: Sequence[float], num_layers: int) -> list[float]:
    alphas = [float(a) for a in alphas]
    if len(alphas) != num_layers:
        raise ValueError(f"need one alpha per Linear layer ({num_layers}), got {len(alphas)}")
    if not all(math.isfinite(a) and a > 0 for a in alphas):
        raise ValueError(f"alphas must be finite and > 0 (ReLU is only positively "
                         f"homogeneous), got {alphas}")
    logs = [math.log(a) for a in alphas]
    if abs(sum(logs)) > 1e-12 * max(1.0, sum(abs(v) for v in logs)):
        raise ValueError(f"the product of alphas must be 1 for the output to be unchanged, "
                         f"got {math.prod(alphas)!r}; use layer_alphas() to build them")
    return alphas


def parameter_scales(model: nn.Module, alphas: Sequence[float], *,
                     homogeneous: bool = True) -> torch.Tensor:
    """d, the diagonal of D = dT_alpha/dtheta, flattened in ``model.parameters()`` order.

    alpha_k on the entries of W_k and c_k = prod_{j<=k} alpha_j on those of b_k. Float64,
    on the model's device. ``homogeneous`` as in :func:`linear_layers`.
    """
    layers = linear_layers(model, homogeneous=homogeneous)
    alphas = _check_alphas(alphas, len(layers))
    scale_of: dict[int, float] = {}
    cumulative = 1.0
    for layer, a in zip(layers, alphas):
        cumulative *= a
        scale_of[id(layer.weight)] = a
        if layer.bias is not None:
            scale_of[id(layer.bias)] = cumulative
    params = list(model.parameters())
    return torch.cat([torch.full((p.numel(),), scale_of[id(p)], dtype=torch.float64,
                                 device=p.device) for p in params])


def rescale(model: nn.Module, alphas: Sequence[float], *, homogeneous: bool = True) -> nn.Module:
    """A deep copy of ``model`` with T_alpha applied (the original is left untouched);
    ``homogeneous`` as in :func:`linear_layers`."""
    layers = linear_layers(model, homogeneous=homogeneous)
    alphas = _check_alphas(alphas, len(layers))
    out = copy.deepcopy(model)
    cumulative = 1.0
    with torch.no_grad():
        for layer, a in zip(linear_layers(out, homogeneous=homogeneous), alphas):
            cumulative *= a
            layer.weight.mul_(a)
            if layer.bias is not None:
                layer.bias.mul_(cumulative)
    return out


def rescaled_hessian(hessian: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """H(T theta) = D^{-1} H(theta) D^{-1} from a dense H(theta) and d = diag(D)."""
    if hessian.ndim != 2 or hessian.shape[0] != hessian.shape[1]:
        raise ValueError(f"hessian must be a square matrix, got shape {tuple(hessian.shape)}")
    if scales.shape != (hessian.shape[0],):
        raise ValueError(f"scales must have shape ({hessian.shape[0]},), got {tuple(scales.shape)}")
    inv = 1.0 / scales.to(hessian)
    return inv[:, None] * hessian * inv[None, :]


def count_eigenvalues_above(hessian: torch.Tensor, threshold: float,
                            scales: torch.Tensor) -> int:
    """#{eigenvalues of the symmetric ``hessian`` > ``threshold``}, for H = H(T theta) with
    extreme diagonal scaling D^{-1} (.) D^{-1}, d = ``scales`` the rescaling's Jacobian.

    By Sylvester's law of inertia the count equals the number of positive eigenvalues of
    the congruent C = S D (H - threshold I) D S for invertible diagonal D, S. D H D
    (= H(theta) by the transform law) is well scaled and, being formed entrywise, keeps the
    entrywise accuracy of H; S_ii = (rho + |threshold| d_i^2)^{-1/2}, rho = max_i |(DHD)_ii|,
    balances the remaining diagonal, so C has O(1) entries and LAPACK's backward error
    (~eps ||C||) only blurs eigenvalues within ~1e-13 (relative) of the threshold. A plain
    eigvalsh of H(T theta) errs by ~eps ||H(T theta)||, which for the alpha^-2k-scaled
    bias blocks of a deep net exceeds the threshold itself.
    """
    if hessian.ndim != 2 or hessian.shape[0] != hessian.shape[1]:
        raise ValueError(f"hessian must be a square matrix, got shape {tuple(hessian.shape)}")
    if scales.shape != (hessian.shape[0],):
        raise ValueError(f"scales must have shape ({hessian.shape[0]},), got {tuple(scales.shape)}")
    if not math.isfinite(threshold):
        raise ValueError(f"threshold must be finite, got {threshold}")
    h = hessian.to(torch.float64)
    d = scales.to(h)
    if not bool(torch.all(d > 0)):
        raise ValueError("scales must all be > 0 (the Jacobian of a ReLU rescaling)")
    dhd = d[:, None] * h * d[None, :]
    dhd = (dhd + dhd.T) / 2
    rho = float(dhd.diagonal().abs().max())
    denom = rho + abs(threshold) * d * d
    s = torch.where(denom > 0, denom, torch.ones_like(denom)).rsqrt()
    c = s[:, None] * (dhd - torch.diag(threshold * d * d)) * s[None, :]
    return int((torch.linalg.eigvalsh(c) > 0).sum())
