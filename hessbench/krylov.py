"""What the Krylov and trace algorithms share: float64 products of an operator, random
probes, Gram-Schmidt against a basis, and the memory check of a basis.

Lanczos vectors are reorthogonalised by :func:`reorthogonalize` once the recurrence's
known terms are removed: one classical Gram-Schmidt pass against the whole basis,
repeated only when the pass removed more than a factor 1/sqrt(2) of the vector's norm
(the DGKS criterion: Daniel, Gragg, Kaufman & Stewart, Math. Comp. 30 (1976)). After the
local terms the pass meets only rounding-size components, so the repetition is rare.

Recurrences run in float64 whatever the operator's dtype; only the products A V happen
in the operator's dtype. Random probes come from a seeded CPU ``torch.Generator``, so a
seed gives the same probes on every device.
"""
from __future__ import annotations

import math

import torch

from hessbench.operators import CurvatureOperator, require_memory

__all__ = ["F64", "DGKS", "apply", "basis_memory", "orthogonalize", "reorthogonalize",
           "rademacher"]

F64 = torch.float64
DGKS = 1 / math.sqrt(2.0)
"""Repeat the Gram-Schmidt pass when it leaves less than this fraction of the norm."""


def apply(op: CurvatureOperator, V: torch.Tensor) -> torch.Tensor:
    """A V in the operator's dtype, returned in float64; ``ValueError`` on NaN/Inf."""
    W = op.matmat(V.to(op.dtype)).to(F64)
    if not bool(torch.isfinite(W).all()):
        raise ValueError(f"{op.name}: a product A v is NaN/Inf; check the data and the model "
                         f"(or use dtype=torch.float64 if the loss overflows)")
    return W


def basis_memory(op: CurvatureOperator, vectors: int, what: str, advice: str) -> None:
    """Refuse (``MemoryError``) a float64 basis of ``vectors`` columns that does not fit."""
    require_memory(8 * op.num_params * vectors, op.device, None, what, advice=advice)


def orthogonalize(w: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    """Project the columns of ``V`` out of ``w`` (classical Gram-Schmidt, twice)."""
    if V.shape[1] == 0:
        return w
    for _ in range(2):
        w = w - V @ (V.T @ w)
    return w


def reorthogonalize(w: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """Remove from ``w`` (n,) its components along the rows of ``basis`` (j x n,
    orthonormal), in place: one classical Gram-Schmidt pass, a second one by DGKS."""
    before = float(torch.linalg.vector_norm(w))
    w.sub_(basis.T @ (basis @ w))
    if float(torch.linalg.vector_norm(w)) < DGKS * before:
        w.sub_(basis.T @ (basis @ w))
    return w


def rademacher(n: int, m: int, gen: torch.Generator, device: torch.device) -> torch.Tensor:
    """An n x m float64 matrix of independent +-1 entries (drawn on the CPU from ``gen``)."""
    return (torch.randint(0, 2, (n, m), generator=gen, dtype=F64) * 2 - 1).to(device)
