"""The operations the benchmarks time side by side, as one interface that every
implementation (hessbench here, its peers in :mod:`hessbench.bench.peers`) fills in.

An implementation first builds its Hessian object of a workload (:meth:`prepare`: an
operator, or a peer's ``hessian`` class), then hands out zero-argument callables, one
per timed operation, so that set-up cost stays out of the timing. An operation an
implementation does not offer raises ``NotImplementedError`` (asv reports the
benchmark as skipped).

hessbench's operations at the benchmark settings (:mod:`hessbench.bench.specs`) are
also module functions (:func:`eigsh_top`, :func:`trace_hutchpp`, :func:`density_slq`,
:func:`hvp_fn`), the one spelling of each call that gate, report and suites share.
"""
from __future__ import annotations

import importlib.util
from abc import ABC, abstractmethod
from collections.abc import Callable
from functools import partial
from typing import ClassVar, Generic, TypeVar

import torch

import hessbench as hb
from hessbench.bench.specs import DENSITY_PROBES, DENSITY_STEPS, EIGSH_TOL, TRACE_BUDGET
from hessbench.bench.workloads import Workload
from hessbench.utils import seeded_generator

__all__ = ["Implementation", "Hessbench", "hvp_fn", "eigsh_top", "trace_hutchpp",
           "density_slq", "global_seeded", "random_block"]

H = TypeVar("H")
Call = Callable[[], object]


class Implementation(ABC, Generic[H]):
    """One implementation of the benchmarked operations on a Hessian object ``H``."""

    name: ClassVar[str]
    requires: ClassVar[str]  # the module that must be importable

    @classmethod
    def available(cls) -> bool:
        """Whether :attr:`requires` is installed."""
        return importlib.util.find_spec(cls.requires) is not None

    def _lacks(self, what: str) -> NotImplementedError:
        return NotImplementedError(f"{self.name} has no {what}")

    @abstractmethod
    def prepare(self, w: Workload, batch_size: int | None = None) -> H:
        """The Hessian object of ``w``: the whole set as one batch, or streamed over
        batches of ``batch_size`` samples."""

    @abstractmethod
    def hvp(self, h: H) -> Call:
        """One Hessian-vector product with a fixed random vector (seed 0)."""

    def hvp_block(self, h: H, block: int) -> Call:
        """One product with a fixed random block of ``block`` vectors."""
        raise self._lacks("block product")

    def top_eigenvalues(self, h: H, k: int) -> Call:
        """The ``k`` largest eigenvalues, by the implementation's own solver and stopping rule."""
        raise self._lacks("top-eigenvalue solver")

    def trace(self, h: H) -> Call:
        """A stochastic trace estimate with the implementation's defaults."""
        raise self._lacks("trace estimator")

    def density(self, h: H) -> Call:
        """A spectral density by stochastic Lanczos quadrature (SLQ)."""
        raise self._lacks("spectral density")

    def spectrum(self, h: H) -> Call:
        """Every eigenvalue, from the dense Hessian."""
        raise self._lacks("exact spectrum")


def global_seeded(fn: Callable[[], object], seed: int, device: torch.device) -> Call:
    """``fn`` as a closure that seeds torch's *global* RNG with ``seed`` on every call (for
    peers that draw their probes from it) and restores the caller's RNG state after."""
    devices = [device] if device.type == "cuda" else []

    def call() -> object:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            return fn()

    return call


def random_block(n: int, block: int, dtype: torch.dtype, device: torch.device,
                 seed: int = 0) -> torch.Tensor:
    """The fixed random (n, block) block every implementation's products are timed on."""
    V = torch.randn(n, block, generator=seeded_generator(seed), dtype=dtype)
    return V.to(device)


def hvp_fn(op: hb.CurvatureOperator, block: int = 1, seed: int = 0) -> Call:
    """One product with a fixed random block of ``block`` vectors (``block=1``: matvec)."""
    V = random_block(op.num_params, block, op.dtype, op.device, seed)
    if block == 1:
        v = V[:, 0]
        return lambda: op.matvec(v)
    return lambda: op.matmat(V)


def eigsh_top(op: hb.CurvatureOperator, k: int, tol: float = EIGSH_TOL) -> hb.EigResult:
    """The ``k`` largest eigenvalues by ``hb.eigsh`` (thick-restart Lanczos, residual
    tolerance ``tol``, default :data:`~hessbench.bench.specs.EIGSH_TOL`, seed 0, no
    vectors)."""
    return hb.eigsh(op, k=k, which="LA", tol=tol, seed=0, return_vectors=False,
                    on_unconverged="ignore")


def trace_hutchpp(op: hb.CurvatureOperator, num_matvecs: int = TRACE_BUDGET) -> hb.TraceResult:
    """``hb.trace`` by Hutch++ (Meyer et al. 2021) with ``num_matvecs`` products, seed 0."""
    return hb.trace(op, "hutch++", num_matvecs=num_matvecs, seed=0)


def density_slq(op: hb.CurvatureOperator) -> hb.DensityResult:
    """``hb.spectral_density`` by SLQ (Lin, Saad & Yang 2016): :data:`DENSITY_PROBES`
    probes of :data:`DENSITY_STEPS` Lanczos steps, seed 0."""
    return hb.spectral_density(op, num_probes=DENSITY_PROBES, lanczos_steps=DENSITY_STEPS,
                               seed=0)


class Hessbench(Implementation[hb.CurvatureOperator]):
    """hessbench's own operators (``hb.hessian``) and Krylov routines."""

    name = "hessbench"
    requires = "hessbench"

    def prepare(self, w: Workload, batch_size: int | None = None) -> hb.CurvatureOperator:
        return w.hessian(batch_size)

    def hvp(self, h: hb.CurvatureOperator) -> Call:
        return hvp_fn(h)

    def hvp_block(self, h: hb.CurvatureOperator, block: int) -> Call:
        return hvp_fn(h, block)

    def top_eigenvalues(self, h: hb.CurvatureOperator, k: int) -> Call:
        return partial(eigsh_top, h, k)

    def trace(self, h: hb.CurvatureOperator) -> Call:
        return partial(trace_hutchpp, h)

    def density(self, h: hb.CurvatureOperator) -> Call:
        return partial(density_slq, h)

    def spectrum(self, h: hb.CurvatureOperator) -> Call:
        return partial(hb.spectrum, h)
