"""XTrace: the exchangeable trace estimator of Epperly, Tropp & Webber, "XTrace: making
the most of every sample in stochastic trace estimation", SIAM J. Matrix Anal. Appl. 45
(2024), Algorithm 1 with the "improved" normalisation of their Section 2.

With m test vectors Omega = [w_1 .. w_m] (uniform on the sphere of radius sqrt(n)),
Y = A Omega = Q R and Q_(i) an orthonormal basis of the span of Y without column i,
every i gives an unbiased estimate

    t_i = tr(Q_(i)^T A Q_(i)) + u_i^T A u_i,   u_i = s_i (I - Q_(i) Q_(i)^T) w_i,

s_i = sqrt(n - m + 1) / ||(I - Q_(i) Q_(i)^T) w_i|| (w_i is independent of Q_(i) and
rotation invariant, so u_i is a uniform direction of the (n - m + 1)-dimensional
complement, scaled so that E[u_i u_i^T] = I - Q_(i) Q_(i)^T). XTrace is their mean, and
its error estimate the standard error std(t_i) / sqrt(m). Each leave-one-out basis is a
rank-one downdate of Q: Q_(i) Q_(i)^T = Q Q^T - q_i q_i^T, q_i = Q z_i with z_i the
normalised i-th column of R^{-T}, the direction of range(Q) orthogonal to every other
column of Y. So 2m products give all m estimates (m for Y, m for A Q).
"""
from __future__ import annotations

import math

import torch

from hessbench.krylov import F64, apply
from hessbench.operators import CurvatureOperator

__all__ = ["sphere_vectors", "xtrace_samples"]


def _downdate_directions(R: torch.Tensor) -> torch.Tensor:
    """The columns z_i of R^{-T}, normalised: z_i is orthogonal to R e_j for every j != i.

    Diagonal entries of R below eps * max|R_ii| (a rank-deficient sketch: A of rank < m)
    are raised to that size, a backward perturbation of Y at rounding level, so that the
    triangular solve stays finite."""
    floor = torch.finfo(F64).eps * max(float(R.diagonal().abs().max()), 1e-300)
    d = R.diagonal()
    R = R.clone()
    R.diagonal().copy_(torch.where(d.abs() < floor, torch.full_like(d, floor), d))
    eye = torch.eye(R.shape[0], dtype=F64, device=R.device)
    Z = torch.linalg.solve_triangular(R.T, eye, upper=False)
    return Z / torch.linalg.vector_norm(Z, dim=0)


def sphere_vectors(n: int, m: int, gen: torch.Generator, device: torch.device) -> torch.Tensor:
    """m independent test vectors uniform on the sphere of radius sqrt(n) (normalised
    Gaussians drawn on the CPU from ``gen``), as the columns of an n x m float64 matrix."""
    Om = torch.randn(n, m, generator=gen, dtype=F64)
    return (Om * (math.sqrt(n) / torch.linalg.vector_norm(Om, dim=0))).to(device)


def xtrace_samples(op: CurvatureOperator, Om: torch.Tensor) -> torch.Tensor:
    """The m exchangeable estimates t_i of tr(A) (module docstring) for the m columns of
    ``Om`` (from :func:`sphere_vectors`, m <= n), from 2m products."""
    n, m = Om.shape
    Y = apply(op, Om)
    Q, R = torch.linalg.qr(Y)
    W = Q.T @ Om                                    # w_i in the basis Q
    S = _downdate_directions(R)
    c = (S * W).sum(0)                              # q_i^T w_i
    # ||(I - P_i) w_i||^2 = ||w_i||^2 - ||W_i||^2 + c_i^2 with ||w_i||^2 = n
    rest = (n - (W * W).sum(0) + c * c).clamp_min(torch.finfo(F64).tiny)
    scale = math.sqrt(n - m + 1) / rest.sqrt()
    Om, Y, R, W, c = Om * scale, Y * scale, R * scale, W * scale, c * scale
    Z = apply(op, Q)
    H = Q.T @ Z
    T = Z.T @ Om                                    # column i: Q^T A w_i
    HS = H @ S
    HW = H @ W
    # u_i = w_i - Q g_i with g_i = W_i - c_i z_i (the part of w_i in range(Q_(i)) removed):
    # u^T A u = w^T A w - 2 g^T Q^T A w + g^T H g, expanded so that every term is a column
    # dot product; Q^T A w is taken as R (= Q^T Y) and as T alike, symmetrically.
    zHz = (S * HS).sum(0)
    return (torch.trace(H) - zHz                     # tr(P_i A) = tr(H) - z_i^T H z_i
            + (Om * Y).sum(0)                       # w^T A w
            - (W * R).sum(0) - (T * W).sum(0)       # -2 W_i^T Q^T A w
            + c * ((S * R).sum(0) + (T * S).sum(0))  # +2 c_i z_i^T Q^T A w
            + (W * HW).sum(0) - 2 * c * (S * HW).sum(0) + c * c * zHz)  # g^T H g
