"""Gradient-noise models and noisy gradient dynamics (Zhu et al., ICML 2019).

Zhu, Wu, Yu, Wu, Ma, "The Anisotropic Noise in Stochastic Gradient Descent: Its
Behavior of Escaping from Sharp Minima and Regularization Effects" study the
general dynamics with unbiased noise

    theta_{t+1} = theta_t - lr * grad L(theta_t) + eps_t,   eps_t ~ N(0, Sigma_t).

SGD with batch size b is the case Sigma_t = lr^2 Sigma_sgd(theta_t), where the
gradient-noise covariance of the finite sum L = (1/N) sum_i l_i is centred,

    Sigma_sgd = (1/b) [ (1/N) sum_i g_i g_i^T - g g^T ],   g = (1/N) sum_i g_i,

for minibatches drawn with replacement (times (N - b) / (N - 1) without).
Table 1 compares SGD with Langevin-type dynamics whose noise has the same
magnitude but another shape (see :data:`TABLE1_KINDS`). Here "same magnitude"
means the same expected squared norm E||eps||^2 = Tr Sigma (App. D.1 scales
every noise to Tr = 0.01).

Escape indicator (Prop. 1): around a minimum with Hessian H, the
Ornstein-Uhlenbeck approximation dtheta = -H theta dt + Sigma^{1/2} dW started
at the minimum gives (Eq. 13)

    E L(theta_t) - L(theta_0) = 1/4 Tr((I - exp(-2 H t)) Sigma) = t/2 Tr(H Sigma) + O(t^2),

so for noise of a fixed trace Tr(H Sigma) measures how fast it escapes. The
isotropic noise of the same trace, Sigma_iso = Tr(Sigma)/D I, gives
Tr(H Sigma_iso) = Tr(H) Tr(Sigma) / D.

Everything is batched over leading dimensions (independent chains) and draws
randomness from an explicit ``torch.Generator``. Nothing here imports the
claims engine.

References: Zhu, Wu, Yu, Wu & Ma, ICML 2019, Eq. 4, Prop. 1, Eq. 13, Table 1, App. D.1.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.func import grad, hessian, vmap

from hessbench.utils import seeded_generator

__all__ = [
    "TABLE1_KINDS", "sgd_covariance", "top_k_part",
    "normalise_trace", "table1_covariance", "sample_gaussian", "gld_step",
    "GLDResult", "FiniteSum", "simulate_gld", "escape_indicator", "isotropic_indicator",
    "alignment_coefficient", "ou_expected_loss_increase", "discrete_expected_loss_increase",
]

TABLE1_KINDS: tuple[str, ...] = (
    "gd", "sgd", "gld_const", "gld_dynamic", "gld_diag", "gld_leading", "gld_hessian",
    "gld_1st_eigvec",
)
"""Noise shapes of Zhu et al. Table 1 (before scaling to a common trace):

* ``gd``: no noise.
* ``sgd``: Sigma_sgd (Gaussian with the SGD covariance).
* ``gld_const`` / ``gld_dynamic``: isotropic I; const has a fixed trace, dynamic
  follows Tr Sigma_sgd at the current point.
* ``gld_diag``: diag(Sigma_sgd).
* ``gld_leading``: the top-k eigen-part of Sigma_sgd.
* ``gld_hessian``: the top-k eigen-part of H (its kept eigenvalues must be >= 0).
* ``gld_1st_eigvec``: u_1 u_1^T, u_1 the top eigenvector of H.
"""

_NEEDS_SGD = frozenset({"sgd", "gld_diag", "gld_leading"})
_NEEDS_HESSIAN = frozenset({"gld_hessian", "gld_1st_eigvec"})
_NEEDS_K = frozenset({"gld_leading", "gld_hessian"})


def _check_square(name: str, m: torch.Tensor) -> None:
    if not isinstance(m, torch.Tensor) or not m.is_floating_point():
        raise TypeError(f"{name} must be a floating-point torch.Tensor, got {type(m).__name__}")
    if m.ndim < 2 or m.shape[-1] != m.shape[-2]:
        raise ValueError(f"{name} must have shape (..., D, D), got {tuple(m.shape)}")


def _trace(m: torch.Tensor) -> torch.Tensor:
    return m.diagonal(dim1=-2, dim2=-1).sum(-1)


def sgd_covariance(per_sample_grads: torch.Tensor, batch_size: int = 1, *,
                   replacement: bool = True) -> torch.Tensor:
    """Centred SGD gradient-noise covariance from per-sample gradients.

    ``per_sample_grads``: shape ``(..., N, D)`` (for a network:
    :meth:`hessbench.problem.Problem.per_sample_gradients`). Returns ``(..., D, D)``:
    ``(1/b) (1/N) sum_i (g_i - g)(g_i - g)^T`` (= (1/b)[(1/N) sum g_i g_i^T - g g^T]),
    times ``(N - b) / (N - 1)`` when ``replacement=False``.
    """
    g = per_sample_grads
    if not isinstance(g, torch.Tensor) or not g.is_floating_point() or g.ndim < 2:
        raise TypeError("per_sample_grads must be a floating-point tensor of shape (..., N, D)")
    n = g.shape[-2]
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= n:
        raise ValueError(f"batch_size must be an int in [1, N={n}], got {batch_size!r}")
    centred = g - g.mean(dim=-2, keepdim=True)
    cov = centred.transpose(-1, -2) @ centred / (n * batch_size)
    if not replacement:
        if n == 1:
            raise ValueError("sampling without replacement needs N >= 2 samples")
        cov = cov * ((n - batch_size) / (n - 1))
    return cov


def top_k_part(m: torch.Tensor, k: int) -> torch.Tensor:
    """``sum_{i<=k} lambda_i u_i u_i^T`` over the k largest (algebraic) eigenpairs of
    symmetric ``m``."""
    _check_square("m", m)
    d = m.shape[-1]
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= d:
        raise ValueError(f"k must be an int in [1, D={d}], got {k!r}")
    vals, vecs = torch.linalg.eigh(m)
    vals, vecs = vals[..., d - k:], vecs[..., d - k:]
    return (vecs * vals.unsqueeze(-2)) @ vecs.transpose(-1, -2)


def normalise_trace(cov: torch.Tensor, trace: float | torch.Tensor) -> torch.Tensor:
    """``cov * trace / Tr(cov)``: the same shape with expected squared norm ``trace``.

    Raises ``ValueError`` where ``Tr(cov) <= 0`` (no noise direction to scale).
    """
    _check_square("cov", cov)
    tr = _trace(cov)
    if bool((tr <= 0).any()):
        raise ValueError("cannot scale a covariance with trace <= 0 to a given trace "
                         f"(smallest trace {float(tr.min()):.3g}); is the noise identically zero?")
    target = torch.as_tensor(trace, dtype=cov.dtype, device=cov.device)
    return cov * (target / tr)[..., None, None]


def table1_covariance(kind: str, *, trace: float | torch.Tensor | None,
                      sgd_cov: torch.Tensor | None = None, hessian: torch.Tensor | None = None,
                      k: int | None = None, dim: int | None = None) -> torch.Tensor:
    """Noise covariance of dynamic ``kind`` (Zhu et al. Table 1) at one point, batched.

    The shape comes from :data:`TABLE1_KINDS`; it is scaled to trace ``trace``
    (the expected squared norm of one noise step). ``trace=None`` matches the
    SGD noise magnitude ``Tr(sgd_cov)`` instead; ``gld_const`` needs a number.
    ``k`` (``gld_leading``, ``gld_hessian``) is the number of eigenpairs kept.
    Batch shape and dimension follow ``sgd_cov`` / ``hessian``; for ``gd`` and
    ``gld_const`` without either, pass ``dim`` and get one unbatched ``(dim, dim)``
    matrix (float64).
    """
    if kind not in TABLE1_KINDS:
        raise ValueError(f"unknown noise kind {kind!r}; choose one of {', '.join(TABLE1_KINDS)}")
    if kind in _NEEDS_SGD and sgd_cov is None:
        raise ValueError(f"noise kind {kind!r} needs sgd_cov (the SGD covariance at this point)")
    if kind in _NEEDS_HESSIAN and hessian is None:
        raise ValueError(f"noise kind {kind!r} needs hessian (the loss Hessian at this point)")
    if trace is None and sgd_cov is None and kind != "gd":
        raise ValueError("trace=None matches Tr(sgd_cov), so pass sgd_cov (or give a trace)")
    if trace is None and kind == "gld_const":
        raise ValueError("gld_const has a fixed trace: pass trace=<float> "
                         "(isotropic noise following Tr(sgd_cov) is 'gld_dynamic')")
    if kind in _NEEDS_K and k is None:
        raise ValueError(f"noise kind {kind!r} keeps the top-k eigenpairs: pass k")
    ref = sgd_cov if sgd_cov is not None else hessian
    if ref is None:
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"pass sgd_cov, hessian or dim (an int >= 1) so the dimension is "
                             f"known; got dim={dim!r}")
        ref = torch.zeros(dim, dim, dtype=torch.float64)
    for name, m in (("sgd_cov", sgd_cov), ("hessian", hessian)):
        if m is not None:
            _check_square(name, m)
    if kind == "gd":
        return torch.zeros_like(ref)
    eye = torch.eye(ref.shape[-1], dtype=ref.dtype, device=ref.device).expand_as(ref)
    if kind == "sgd":
        shape = sgd_cov
    elif kind in ("gld_const", "gld_dynamic"):
        shape = eye
    elif kind == "gld_diag":
        shape = torch.diag_embed(sgd_cov.diagonal(dim1=-2, dim2=-1))
    elif kind == "gld_leading":
        shape = top_k_part(sgd_cov, k)
    else:  # Hessian-based shapes
        vals, vecs = torch.linalg.eigh(hessian)
        if kind == "gld_1st_eigvec":
            u = vecs[..., -1:]
            shape = u @ u.transpose(-1, -2)
        else:
            kept = vals[..., -k:]
            scale = vals.abs().amax(dim=-1, keepdim=True)
            if bool((kept < -1e-10 * scale).any()):
                raise ValueError("gld_hessian: a kept Hessian eigenvalue is negative "
                                 f"({float(kept.min()):.3g}); the Hessian noise needs a PSD "
                                 "top-k part (use a smaller k or gld_1st_eigvec)")
            kept = kept.clamp(min=0)
            u = vecs[..., -k:]
            shape = (u * kept.unsqueeze(-2)) @ u.transpose(-1, -2)
    target = _trace(sgd_cov) if trace is None else trace
    return normalise_trace(shape, target)


def sample_gaussian(cov: torch.Tensor, generator: torch.Generator,
                    batch_shape: tuple[int, ...] = ()) -> torch.Tensor:
    """One draw of ``N(0, cov)`` per leading index: ``(..., D, D) -> batch_shape + (..., D)``.

    Uses the symmetric square root (eigh), so rank-deficient covariances work.
    Eigenvalues below ``-10 D eps max|lambda|`` raise ``ValueError`` (not PSD);
    smaller negative ones are rounding and are set to 0.
    """
    _check_square("cov", cov)
    vals, vecs = torch.linalg.eigh(cov)
    d = cov.shape[-1]
    tol = 10 * d * torch.finfo(cov.dtype).eps * vals.abs().amax(dim=-1, keepdim=True)
    if bool((vals < -tol).any()):
        raise ValueError("covariance is not positive semi-definite "
                         f"(eigenvalue {float(vals.min()):.3g})")
    z = torch.randn(tuple(batch_shape) + vals.shape, generator=generator, dtype=cov.dtype,
                    device=cov.device)
    return torch.einsum("...ij,...j->...i", vecs, vals.clamp(min=0).sqrt() * z)


def gld_step(theta: torch.Tensor, grad_l: torch.Tensor, cov: torch.Tensor | None, lr: float,
             generator: torch.Generator) -> torch.Tensor:
    """One step ``theta - lr * grad + eps``, ``eps ~ N(0, cov)`` (``cov=None``: plain GD)."""
    step = theta - lr * grad_l
    if cov is None:
        return step
    return step + sample_gaussian(cov, generator, theta.shape[:theta.ndim - cov.ndim + 1])


@dataclass(frozen=True)
class GLDResult:
    """Chains of a noisy gradient dynamic: ``final`` (C, D); ``path`` (T, C, D) at the
    iterations ``path_steps``."""

    kind: str
    final: torch.Tensor
    path: torch.Tensor
    path_steps: list[int]


PerSampleLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class FiniteSum:
    """Derivatives of ``L(theta) = (1/N) sum_i l(theta; x_i)`` for ``C`` chains at once.

    ``per_sample_grads(theta, data)``: ``(C, D), (C, N, ...) -> (C, N, D)``;
    ``hessian(theta, data)``: the Hessian of the mean loss, ``(C, D, D)``.
    Build it with :meth:`from_loss` (``torch.func``), or from closed forms.
    """

    per_sample_grads: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    hessian: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

    @classmethod
    def from_loss(cls, per_sample_loss: PerSampleLoss) -> FiniteSum:
        """Autodiff derivatives of ``per_sample_loss(theta, x)`` (one point ``(D,)``, one
        sample; a scalar written with torch ops, as it is vmapped)."""

        def mean_loss(theta: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
            return vmap(per_sample_loss, in_dims=(None, 0))(theta, xs).mean()

        return cls(per_sample_grads=vmap(vmap(grad(per_sample_loss), in_dims=(None, 0))),
                   hessian=vmap(hessian(mean_loss)))


def simulate_gld(kind: str, objective: FiniteSum, data: torch.Tensor,
                 theta0: torch.Tensor, *, lr: float, steps: int,
                 trace: float | None, seed: int, k: int | None = None, batch_size: int = 1,
                 record_every: int = 0) -> GLDResult:
    """Run ``C`` independent chains of the Table 1 dynamic ``kind`` for ``steps`` steps.

    ``data``: ``(C, N, ...)``; chain c follows ``theta <- theta - lr grad L_c + eps``
    with ``L_c = (1/N) sum_i l(theta; data[c, i])`` (``objective`` gives its
    derivatives). ``theta0``: ``(C, D)``. At every step, per chain, Sigma_sgd
    (batch ``batch_size``) and the Hessian are recomputed where the kind needs
    them; the noise is :func:`table1_covariance` with ``trace``, drawn from a
    generator seeded with ``seed``. ``record_every > 0`` stores every
    ``record_every``-th iterate (and the last) in ``path``.
    """
    if kind not in TABLE1_KINDS:
        raise ValueError(f"unknown noise kind {kind!r}; choose one of {', '.join(TABLE1_KINDS)}")
    if not isinstance(objective, FiniteSum):
        raise TypeError("objective must be a hessbench.noise.FiniteSum "
                        "(e.g. FiniteSum.from_loss(per_sample_loss))")
    if theta0.ndim != 2 or data.ndim < 2 or data.shape[0] != theta0.shape[0]:
        raise ValueError("need theta0 of shape (C, D) and data of shape (C, N, ...) with the "
                         "same C; "
                         f"got theta0 {tuple(theta0.shape)}, data {tuple(data.shape)}")
    if not lr > 0 or steps < 0:
        raise ValueError(f"need lr > 0 and steps >= 0, got lr={lr}, steps={steps}")
    if record_every < 0:
        raise ValueError(f"record_every must be >= 0, got {record_every}")
    gen = seeded_generator(seed, theta0.device)
    const_cov = None
    if kind == "gld_const":
        const_cov = table1_covariance(kind, trace=trace, dim=theta0.shape[1]).to(theta0)

    theta = theta0.clone()
    path, path_steps = [theta.clone()], [0]
    for t in range(1, steps + 1):
        per_sample = objective.per_sample_grads(theta, data)
        g = per_sample.mean(dim=1)
        if kind in ("gd", "gld_const"):
            cov = const_cov
        else:
            hess = objective.hessian(theta, data) if kind in _NEEDS_HESSIAN else None
            sgd_cov = sgd_covariance(per_sample, batch_size)
            cov = table1_covariance(kind, trace=trace, sgd_cov=sgd_cov, hessian=hess, k=k)
        theta = gld_step(theta, g, cov, lr, gen)
        if record_every and (t % record_every == 0 or t == steps):
            path.append(theta.clone())
            path_steps.append(t)
    return GLDResult(kind=kind, final=theta, path=torch.stack(path), path_steps=path_steps)


def escape_indicator(hessian: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
    """``Tr(H Sigma)`` (Zhu et al. Prop. 1), batched over leading dimensions."""
    _check_square("hessian", hessian)
    _check_square("cov", cov)
    return torch.einsum("...ij,...ji->...", hessian, cov)


def isotropic_indicator(hessian: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
    """``Tr(H Sigma_iso)`` with ``Sigma_iso = Tr(Sigma)/D I``: ``Tr(H) Tr(Sigma) / D``."""
    _check_square("hessian", hessian)
    _check_square("cov", cov)
    return _trace(hessian) * _trace(cov) / hessian.shape[-1]


def alignment_coefficient(hessian: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
    """``a = Tr(H Sigma) / (lambda_1(H) Tr(Sigma))``, the ``a`` of Zhu et al.'s alignment
    condition ``Tr(H Sigma) >= a lambda_1 Tr(Sigma)``; in [0, 1] for PSD H and Sigma,
    1 iff Sigma lives on the top eigenspace of H."""
    lam1 = torch.linalg.eigvalsh(hessian)[..., -1]
    return escape_indicator(hessian, cov) / (lam1 * _trace(cov))


def _symmetric_function(h: torch.Tensor,
                        fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    vals, vecs = torch.linalg.eigh(h)
    return (vecs * fn(vals).unsqueeze(-2)) @ vecs.transpose(-1, -2)


def ou_expected_loss_increase(hessian: torch.Tensor, cov: torch.Tensor, t: float) -> torch.Tensor:
    """Eq. 13: ``E L(theta_t) - L(theta_0) = 1/4 Tr((I - exp(-2 H t)) Sigma)``.

    For the OU process ``dtheta = -H theta dt + Sigma^{1/2} dW`` started at the
    minimum of ``L = 1/2 theta^T H theta`` (H symmetric, any sign).
    """
    _check_square("hessian", hessian)
    _check_square("cov", cov)
    if t < 0:
        raise ValueError(f"t must be >= 0, got {t}")
    one_minus_exp = _symmetric_function(hessian, lambda v: -torch.expm1(-2 * t * v))
    return 0.25 * escape_indicator(one_minus_exp, cov)


def discrete_expected_loss_increase(hessian: torch.Tensor, step_cov: torch.Tensor, lr: float,
                                    steps: int) -> torch.Tensor:
    """Exact ``E L(theta_k) - L(theta_0)`` of the discretised dynamics on a quadratic.

    ``theta_{j+1} = (I - lr H) theta_j + eps_j``, ``eps_j ~ N(0, step_cov)``,
    ``theta_0 = 0``, ``L = 1/2 theta^T H theta``: with ``M = I - lr H``,

        E L(theta_k) = 1/2 sum_{j<k} Tr(H M^{2j} step_cov)
                     = 1/2 Tr(H (I - M^{2k}) (I - M^2)^{-1} step_cov),

    the geometric sum taken per eigenvalue (``= k`` where ``M^2 = 1``). Euler-Maruyama
    for Eq. 13 with step h is ``lr = h``, ``step_cov = h Sigma``, ``t = k h``; then the
    result is ``1/4 Tr((I - exp(-2Ht)) Sigma) (1 + O(h lambda_max))``.
    """
    _check_square("hessian", hessian)
    _check_square("step_cov", step_cov)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be an int >= 0, got {steps!r}")

    def weight(lam: torch.Tensor) -> torch.Tensor:
        q = (1 - lr * lam) ** 2
        one = q == 1
        geo = torch.where(one, torch.full_like(q, float(steps)),
                          (1 - q ** steps) / torch.where(one, torch.ones_like(q), 1 - q))
        return 0.5 * lam * geo

    return escape_indicator(_symmetric_function(hessian, weight), step_cov)
