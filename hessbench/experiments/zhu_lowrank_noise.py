r"""Table 1 noises of Zhu et al. (ICML 2019) for a network, without D x D matrices.

``hessbench.noise.table1_covariance`` builds the dense D x D covariance of each dynamic;
at D of a few thousand its eigendecomposition at every refresh is too slow. Here each
noise is a *factor*: a per-coordinate scale s (Cov = diag(s^2)) or a basis A (D x r,
Cov = A A^T), so a draw is s * z or A z with z ~ N(0, I). The covariances equal
``table1_covariance(kind, trace=None, sgd_cov=Sigma_sgd, hessian=H, k=k)`` (tested
against it on a small net), i.e. every shape scaled to the SGD noise magnitude
Tr Sigma_sgd (Eq. 14), except ``gld_const`` (a fixed std, Eq. 3's tunable constant):

* Sigma_sgd = C^T C / (N b) from the centred per-sample gradients C (N x D), batch b
  (Eq. 5, with replacement); its top-k eigenpairs (``gld_leading``) come from the N x N
  Gram matrix C C^T: if C C^T w = mu w then Sigma_sgd (C^T w) = mu / (N b) (C^T w).
* ``gld_hessian`` / ``gld_1st_eigvec`` take the Hessian's top eigenpairs (Lanczos in the
  experiment, exact in the tests).

Reference: Zhu, Wu, Yu, Wu & Ma, ICML 2019, Eq. 3, 5, 14 and Table 1.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["NoiseFactor", "centred_gradients", "sgd_trace", "noise_factor", "FACTOR_KINDS"]

FACTOR_KINDS = ("gld_const", "gld_dynamic", "gld_diag", "gld_leading", "gld_hessian",
                "gld_1st_eigvec")


@dataclass(frozen=True)
class NoiseFactor:
    """Gaussian noise N(0, diag(scale^2)) (``scale`` (D,)) or N(0, basis basis^T)
    (``basis`` (D, r)); exactly one is set."""

    scale: torch.Tensor | None = None
    basis: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if (self.scale is None) == (self.basis is None):
            raise ValueError("NoiseFactor needs exactly one of scale (D,) or basis (D, r)")

    def sample(self, generator: torch.Generator) -> torch.Tensor:
        """One draw, shape (D,)."""
        ref = self.scale if self.scale is not None else self.basis
        z = torch.randn(ref.shape[-1] if self.basis is not None else ref.shape[0],
                        generator=generator, dtype=ref.dtype, device=ref.device)
        return self.scale * z if self.scale is not None else self.basis @ z

    def covariance(self) -> torch.Tensor:
        """The dense D x D covariance (for tests and small models)."""
        if self.scale is not None:
            return torch.diag(self.scale ** 2)
        return self.basis @ self.basis.T

    def trace(self) -> float:
        """E ||eps||^2 = Tr Cov."""
        ref = self.scale if self.scale is not None else self.basis
        return float((ref ** 2).sum())


def centred_gradients(per_sample_grads: torch.Tensor) -> torch.Tensor:
    """g_i - (1/N) sum_j g_j for per-sample gradients of shape (N, D)."""
    if per_sample_grads.ndim != 2 or per_sample_grads.shape[0] < 2:
        raise ValueError("per_sample_grads must have shape (N, D) with N >= 2, got "
                         f"{tuple(per_sample_grads.shape)}")
    return per_sample_grads - per_sample_grads.mean(dim=0, keepdim=True)


def sgd_trace(centred: torch.Tensor, batch_size: int) -> float:
    """Tr Sigma_sgd = ||C||_F^2 / (N b) (Eq. 5)."""
    return float((centred ** 2).sum()) / (centred.shape[0] * batch_size)


def _scaled_basis(vectors: torch.Tensor, values: torch.Tensor, trace: float,
                  what: str) -> NoiseFactor:
    """Basis of sum_j values_j v_j v_j^T scaled to trace ``trace``."""
    if bool((values < 0).any()):
        raise ValueError(f"{what}: a kept eigenvalue is negative ({float(values.min()):.3g}); "
                         "the noise needs a PSD top-k part (use a smaller k or gld_1st_eigvec)")
    total = float(values.sum())
    if not total > 0:
        raise ValueError(f"{what}: the kept eigenvalues sum to {total:.3g}; no noise direction")
    return NoiseFactor(basis=vectors * (values * (trace / total)).sqrt())


def noise_factor(kind: str, centred: torch.Tensor, batch_size: int, *, k: int = 1,
                 const_std: float = 0.0, hess_values: torch.Tensor | None = None,
                 hess_vectors: torch.Tensor | None = None) -> NoiseFactor:
    """The noise of Table 1 dynamic ``kind`` at one point (module doc).

    ``centred``: centred per-sample gradients (N, D); ``hess_values`` (descending) and
    ``hess_vectors`` (D, >= k): the Hessian's top eigenpairs, for the Hessian kinds.
    """
    if kind not in FACTOR_KINDS:
        raise ValueError(f"unknown noise kind {kind!r}; choose one of {', '.join(FACTOR_KINDS)}")
    n, d = centred.shape
    if kind == "gld_const":
        if not const_std > 0:
            raise ValueError(f"gld_const needs const_std > 0, got {const_std}")
        return NoiseFactor(scale=torch.full((d,), float(const_std), dtype=centred.dtype,
                                            device=centred.device))
    trace = sgd_trace(centred, batch_size)
    if not trace > 0:
        raise ValueError("Tr Sigma_sgd is 0 (all per-sample gradients equal): nothing to match")
    if kind == "gld_dynamic":
        return NoiseFactor(scale=torch.full((d,), (trace / d) ** 0.5, dtype=centred.dtype,
                                            device=centred.device))
    if kind == "gld_diag":
        return NoiseFactor(scale=((centred ** 2).sum(dim=0) / (n * batch_size)).sqrt())
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, N={n}], got {k}")
    if kind == "gld_leading":
        mu, w = torch.linalg.eigh(centred @ centred.T)
        mu, w = mu.flip(0)[:k].clamp(min=0), w.flip(1)[:, :k]
        vectors = centred.T @ w / mu.clamp(min=torch.finfo(mu.dtype).tiny).sqrt()
        return _scaled_basis(vectors, mu, trace, "gld_leading")
    if hess_values is None or hess_vectors is None:
        raise ValueError(f"noise kind {kind!r} needs hess_values and hess_vectors "
                         "(the Hessian's top eigenpairs)")
    kept = 1 if kind == "gld_1st_eigvec" else k
    if hess_vectors.shape[1] < kept:
        raise ValueError(f"{kind}: need {kept} Hessian eigenvectors, got {hess_vectors.shape[1]}")
    vectors = hess_vectors[:, :kept].to(centred.dtype)
    if kind == "gld_1st_eigvec":
        return NoiseFactor(basis=vectors * trace ** 0.5)
    return _scaled_basis(vectors, hess_values[:kept].to(centred.dtype), trace, "gld_hessian")
