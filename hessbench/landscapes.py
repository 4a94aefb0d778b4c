"""Closed-form toy losses from the papers.

Each section belongs to one paper; functions are pure torch and vectorised over
a leading batch of independent chains.

References: Wei & Schwab, "How noise affects the Hessian spectrum in overparameterized
neural networks" (2020), §4.2; Zhu, Wu, Yu, Wu & Ma, "The Anisotropic Noise in Stochastic
Gradient Descent", ICML 2019, App. D.1.
"""
from __future__ import annotations

# --- Wei & Schwab, "How noise affects the Hessian spectrum" (valley toys) ---
#
# A valley toy is L(theta) = sum_i a_i(y) x_i^2 with theta = (x, y): the first k
# coordinates x are non-degenerate, the last m coordinates y are degenerate.
# Every point of the floor x = 0 is a global minimum; there the Hessian is
# diag(2 a(y)) (+) 0_m, so its non-degenerate eigenvalues are 2 a_i(y) and
#     Tr H(y) = 2 sum_i a_i(y),   log det H_nd(y) = sum_i log(2 a_i(y)).
# Away from the floor (x != 0) the full Hessian is
#     d2L/dx_i dx_j = 2 a_i delta_ij,  d2L/dx_i dy = 2 x_i grad a_i,
#     d2L/dy dy = sum_i x_i^2 hess a_i.

import math
from dataclasses import dataclass
from typing import Callable

import torch

Profile = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class ValleyToy:
    """A valley loss ``L = sum_i a_i(y) x_i^2``, ``a_i(y) = f_i(w_i . y)`` (Wei & Schwab §4.2).

    ``forms`` are the rows ``w_i`` (k rows of length m); ``profile(u)`` maps
    ``u = y W^T`` of shape ``(B, k)`` to ``(f, f', f'')`` element-wise, so that
    ``grad a_i = f_i' w_i`` and ``hess a_i = f_i'' w_i w_i^T``.
    """

    name: str
    formula: str
    forms: tuple[tuple[float, ...], ...]
    profile: Profile

    @property
    def n_nondegenerate(self) -> int:
        return len(self.forms)

    @property
    def n_degenerate(self) -> int:
        return len(self.forms[0])

    @property
    def dim(self) -> int:
        return self.n_nondegenerate + self.n_degenerate

    def form_matrix(self, like: torch.Tensor) -> torch.Tensor:
        """``W`` (shape ``(k, m)``) with the dtype and device of ``like``."""
        return torch.tensor(self.forms, dtype=like.dtype, device=like.device)

    def split(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Check ``theta`` (shape ``(B, k + m)``) and return ``(x, y)``."""
        if not isinstance(theta, torch.Tensor) or not theta.is_floating_point():
            raise TypeError(f"{self.name}: theta must be a floating-point torch.Tensor")
        if theta.ndim != 2 or theta.shape[1] != self.dim:
            raise ValueError(f"{self.name}: theta must have shape (chains, {self.dim}), "
                             f"got {tuple(theta.shape)}")
        return theta[:, :self.n_nondegenerate], theta[:, self.n_nondegenerate:]

    def check_y(self, y: torch.Tensor) -> torch.Tensor:
        if not isinstance(y, torch.Tensor) or not y.is_floating_point():
            raise TypeError(f"{self.name}: y must be a floating-point torch.Tensor")
        if y.ndim != 2 or y.shape[1] != self.n_degenerate:
            raise ValueError(f"{self.name}: y (degenerate coordinates) must have shape "
                             f"(chains, {self.n_degenerate}), got {tuple(y.shape)}")
        return y

    def coefficients(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(a, grad_a, hess_a)`` at ``y``: shapes ``(B, k)``, ``(B, k, m)``, ``(B, k, m, m)``."""
        w = self.form_matrix(self.check_y(y))
        f, df, d2f = self.profile(y @ w.T)
        return f, df[:, :, None] * w, d2f[:, :, None, None] * (w[:, :, None] * w[:, None, :])


def _abs_profile(u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    # f_i(u) = |u|; derivatives almost everywhere (off the kinks u_i = 0).
    return u.abs(), torch.sign(u), torch.zeros_like(u)


def _exp_profile(u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    # f_1(s) = 4 - 2 exp(-s), f_2(d) = exp(-d^2).
    s, d = u[:, 0], u[:, 1]
    e1, e2 = torch.exp(-s), torch.exp(-d * d)
    f = torch.stack([4.0 - 2.0 * e1, e2], dim=1)
    df = torch.stack([2.0 * e1, -2.0 * d * e2], dim=1)
    d2f = torch.stack([-2.0 * e1, (4.0 * d * d - 2.0) * e2], dim=1)
    return f, df, d2f


WEI_SCHWAB_ABS = ValleyToy(
    name="wei_schwab_abs", formula="L = |t3 + t4| t1^2 + |t3 + 2 t4| t2^2",
    forms=((1.0, 1.0), (1.0, 2.0)), profile=_abs_profile)
"""Wei & Schwab §4.2, Fig. 2b. Piecewise linear a(y): Tr H has a constant gradient
between kinks, so the SGD trace drift is constant in time."""

WEI_SCHWAB_EXP = ValleyToy(
    name="wei_schwab_exp", formula="L = (4 - 2 exp(-t3 - t4)) t1^2 + exp(-(t3 - t4)^2) t2^2",
    forms=((1.0, 1.0), (1.0, -1.0)), profile=_exp_profile)
"""Wei & Schwab §4.2, Fig. 2c-d (Corollary 2.1: noise structure selects what decreases)."""


def _tradeoff_profile(u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    # f_1(u) = exp(u), f_2(u) = 4 exp(-u / 2).
    e1, e2 = torch.exp(u[:, 0]), 4.0 * torch.exp(-0.5 * u[:, 1])
    return (torch.stack([e1, e2], dim=1), torch.stack([e1, -0.5 * e2], dim=1),
            torch.stack([e1, 0.25 * e2], dim=1))


TRACE_LOGDET_TRADEOFF = ValleyToy(
    name="trace_logdet_tradeoff", formula="L = exp(t3) t1^2 + 4 exp(-t3 / 2) t2^2",
    forms=((1.0,), (1.0,)), profile=_tradeoff_profile)
"""Ours (for Wei & Schwab §4.2, Fig. 2c-d): a one-dimensional valley on which the trace and
the log-determinant are anti-correlated, as the paper says its toy was designed to be. On the
floor ``Tr H = 2 (e^u + 4 e^{-u/2})`` falls with u for ``u < (2/3) ln 2`` while
``log det H_nd = log 16 + u / 2`` rises with u everywhere, so lowering one raises the other.
(The printed exp toy does not have this property: there ``grad Tr H . grad log det H_nd > 0``
on the whole floor, so any diagonal noise lowers both to leading order.)"""


def valley_loss(toy: ValleyToy, theta: torch.Tensor) -> torch.Tensor:
    """``L(theta)`` per chain, shape ``(B,)``."""
    x, y = toy.split(theta)
    a, _, _ = toy.coefficients(y)
    return (a * x * x).sum(dim=1)


def valley_gradient(toy: ValleyToy, theta: torch.Tensor) -> torch.Tensor:
    """Closed-form gradient ``(2 a x, sum_i x_i^2 grad a_i)``, shape ``(B, k + m)``."""
    x, y = toy.split(theta)
    a, grad_a, _ = toy.coefficients(y)
    gy = torch.einsum("bi,bij->bj", x * x, grad_a)
    return torch.cat([2.0 * a * x, gy], dim=1)


def valley_hessian(toy: ValleyToy, theta: torch.Tensor) -> torch.Tensor:
    """Closed-form full Hessian, shape ``(B, k + m, k + m)`` (block formula above)."""
    x, y = toy.split(theta)
    a, grad_a, hess_a = toy.coefficients(y)
    k = toy.n_nondegenerate
    h = theta.new_zeros(theta.shape[0], toy.dim, toy.dim)
    h[:, :k, :k] = torch.diag_embed(2.0 * a)
    h[:, :k, k:] = 2.0 * x[:, :, None] * grad_a
    h[:, k:, :k] = h[:, :k, k:].transpose(1, 2)
    h[:, k:, k:] = torch.einsum("bi,bijl->bjl", x * x, hess_a)
    return h


def valley_floor_eigenvalues(toy: ValleyToy, y: torch.Tensor) -> torch.Tensor:
    """Non-degenerate Hessian eigenvalues ``2 a_i(y)`` on the floor ``x = 0``, shape ``(B, k)``."""
    y = toy.check_y(y)
    return 2.0 * toy.profile(y @ toy.form_matrix(y).T)[0]


def valley_floor_trace(toy: ValleyToy, y: torch.Tensor) -> torch.Tensor:
    """``Tr H`` at the floor point ``(0, y)``: ``2 sum_i a_i(y)``, shape ``(B,)``."""
    return valley_floor_eigenvalues(toy, y).sum(dim=1)


def valley_floor_logdet(toy: ValleyToy, y: torch.Tensor) -> torch.Tensor:
    """``log det`` of the non-degenerate Hessian at ``(0, y)``: ``sum_i log 2 a_i(y)``.

    ``nan`` where some ``a_i <= 0`` (the floor is then not a minimum).
    """
    lam = valley_floor_eigenvalues(toy, y)
    return torch.where(lam > 0, lam, torch.full_like(lam, math.nan)).log().sum(dim=1)


# --- Zhu et al. (ICML 2019), App. D.1: two-basin 2-D surface ---
#
# The finite sum L(w) = (1/N) sum_i l(w; x_i) of the authors' released code
# (github.com/uuujf/SGDNoise, 2Dim/model.py and run.py; App. D.1):
#     l(w; x) = min( 10 (c u - s v)^2 + 100 (c u + s v)^2,  |w - x + (1, 1)|^2 ),
#     (u, v) = w - x - (1, 1),   c = cos(th), s = sin(th),   th = pi/4,
# with samples x = 1e-2 (sqrt(10) z_1, z_2) K, K = [[c, -s], [s, c]], z ~ N(0, I_2),
# i.e. x ~ N(0, 1e-4 K^T diag(10, 1) K). At th = pi/4 the sharp branch is
# 10 ((u - v)/sqrt2)^2 + 100 ((u + v)/sqrt2)^2: Hessian eigenvalues 20 along
# (1, -1)/sqrt2 and 200 along (1, 1)/sqrt2, the direction towards the flat
# basin (isotropic Hessian 2 I) around (-1, -1). The data spread is largest
# along (1, -1)/sqrt2, the sharp branch's flat direction.

ZHU_SHARP_CENTRE = (1.0, 1.0)
ZHU_FLAT_CENTRE = (-1.0, -1.0)


def _zhu_branches(w: torch.Tensor, x: torch.Tensor, theta: float):
    """Projections p = a.r, q = b.r of r = w - x - 1 (a = (c, -s), b = (c, s)), the
    flat residual w - x + 1 by component, and the two branch values."""
    if w.shape[-1] != 2 or x.shape[-1] != 2:
        raise ValueError(f"w and x must end in a dimension of size 2, got {tuple(w.shape)} and "
                         f"{tuple(x.shape)}")
    c, s = math.cos(theta), math.sin(theta)
    d0, d1 = w[..., 0] - x[..., 0], w[..., 1] - x[..., 1]   # components, no size-2 reductions
    p, q = c * (d0 - 1.0) - s * (d1 - 1.0), c * (d0 - 1.0) + s * (d1 - 1.0)
    f0, f1 = d0 + 1.0, d1 + 1.0
    return p, q, f0, f1, 10.0 * p * p + 100.0 * q * q, f0 * f0 + f1 * f1


def zhu_two_basin_loss(w: torch.Tensor, x: torch.Tensor,
                       theta: float = math.pi / 4) -> torch.Tensor:
    """Per-sample loss ``l(w; x)`` of Zhu et al. App. D.1 (formula above).

    ``w`` and ``x`` have shape ``(..., 2)`` and broadcast; returns shape ``(...)``.
    Pure torch, so ``torch.func`` transforms (vmap, grad, hessian) apply.
    """
    *_, sharp, flat = _zhu_branches(w, x, theta)
    return torch.minimum(sharp, flat)


def zhu_two_basin_grad(w: torch.Tensor, x: torch.Tensor,
                       theta: float = math.pi / 4) -> torch.Tensor:
    """Closed-form per-sample gradient: ``2 (10 p a + 100 q b)`` on the sharp branch,
    else ``2 (w - x + 1)`` (the sharp branch wins ties). Shape ``(..., 2)``."""
    c, s = math.cos(theta), math.sin(theta)
    p, q, f0, f1, sharp, flat = _zhu_branches(w, x, theta)
    on_sharp = (sharp <= flat).to(w.dtype)   # blend by arithmetic: faster than torch.where here
    g0 = 2.0 * f0 + on_sharp * (20.0 * c * p + 200.0 * c * q - 2.0 * f0)
    g1 = 2.0 * f1 + on_sharp * (-20.0 * s * p + 200.0 * s * q - 2.0 * f1)
    return torch.stack([g0, g1], dim=-1)


def zhu_two_basin_hessian(w: torch.Tensor, x: torch.Tensor,
                          theta: float = math.pi / 4) -> torch.Tensor:
    """Closed-form per-sample Hessian: ``2 A = 20 a a^T + 200 b b^T`` on the sharp branch,
    else ``2 I``. Shape ``(..., 2, 2)``."""
    c, s = math.cos(theta), math.sin(theta)
    *_, sharp, flat = _zhu_branches(w, x, theta)
    sharp_h = torch.tensor([[20 * c * c + 200 * c * c, -20 * c * s + 200 * c * s],
                            [-20 * c * s + 200 * c * s, 20 * s * s + 200 * s * s]],
                           dtype=w.dtype, device=w.device)
    flat_h = 2.0 * torch.eye(2, dtype=w.dtype, device=w.device)
    return torch.where((sharp <= flat)[..., None, None], sharp_h, flat_h)


def zhu_two_basin_samples(chains: int, n: int, *, generator: torch.Generator,
                          theta: float = math.pi / 4, dtype: torch.dtype = torch.float64,
                          device: torch.device | str = "cpu") -> torch.Tensor:
    """``chains`` independent data sets of ``n`` samples ``x = 1e-2 (sqrt(10) z_1, z_2) K``.

    Shape ``(chains, n, 2)``; every chain (one run of App. D.1) draws its own data.
    """
    if chains < 1 or n < 1:
        raise ValueError(f"need chains >= 1 and n >= 1, got chains={chains}, n={n}")
    c, s = math.cos(theta), math.sin(theta)
    rot = torch.tensor([[c, -s], [s, c]], dtype=dtype, device=device)
    scale = torch.tensor([math.sqrt(10.0), 1.0], dtype=dtype, device=device)
    z = torch.randn((chains, n, 2), generator=generator, dtype=dtype, device=device)
    return 1e-2 * (z * scale) @ rot
