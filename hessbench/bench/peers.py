"""Peer libraries on hessbench's workloads, as :class:`~hessbench.bench.impls.Implementation`
adapters; :data:`IMPLEMENTATIONS` lists hessbench first, then every peer: PyHessian here,
curvlinops (:mod:`~hessbench.bench.peer_curvlinops`) and hessian-eigenthings
(:mod:`~hessbench.bench.peer_eigenthings`), the last two optional (``pip install
hessbench[peers]``).

**PyHessian** (Yao et al. 2020, "PyHessian: Neural networks through the lens of the
Hessian"; ``pyhessian`` on PyPI). Its ``hessian`` class calls ``hessian_vector_product``
(imported into ``pyhessian.hessian`` from ``pyhessian.utils``) for a single batch and its
own ``dataloader_hv_product`` for a data loader; :func:`count_hvps` wraps both to count
Hessian-vector products. PyHessian draws its probes from torch's *global* RNG, so each
call here runs inside ``torch.random.fork_rng`` after ``torch.manual_seed(seed)``:
reproducible, and the caller's global RNG state is restored afterwards. PyHessian
mutates the model it is given (``model.eval()``, ``.grad`` fields holding a
double-backward graph), so every call works on a deep copy.
"""
from __future__ import annotations

import copy
import importlib
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from hessbench.bench.impls import Call, Hessbench, Implementation, global_seeded
from hessbench.bench.peer_curvlinops import Curvlinops
from hessbench.bench.peer_eigenthings import HessianEigenthings
from hessbench.bench.workloads import Workload

__all__ = ["IMPLEMENTATIONS", "PyHessian", "HVPCounter", "count_hvps", "PyHessianRun",
           "pyhessian_hessian", "seeded_call", "pyhessian_eigenvalues", "pyhessian_trace",
           "pyhessian_density", "pyhessian_hvp_fn"]


@dataclass
class HVPCounter:
    """Number of PyHessian Hessian-vector products seen so far."""

    count: int = 0


@contextmanager
def count_hvps() -> Iterator[HVPCounter]:
    """Count every PyHessian HVP (single-batch and data-loader paths) inside the block."""
    # the package re-exports the class under the module's name, so fetch the module itself
    mod = importlib.import_module("pyhessian.hessian")
    counter = HVPCounter()
    single, loader = mod.hessian_vector_product, mod.hessian.dataloader_hv_product

    def counted_single(gradsH, params, v):
        counter.count += 1
        return single(gradsH, params, v)

    def counted_loader(self, v):
        counter.count += 1
        return loader(self, v)

    mod.hessian_vector_product = counted_single
    mod.hessian.dataloader_hv_product = counted_loader
    try:
        yield counter
    finally:
        mod.hessian_vector_product = single
        mod.hessian.dataloader_hv_product = loader


@dataclass(frozen=True)
class PyHessianRun:
    """One PyHessian call: its result (or the error it raised), HVPs counted, wall time."""

    value: object
    hvps: int
    seconds: float
    error: str | None = None


def pyhessian_hessian(w: Workload, batch_size: int | None = None, loader: bool = False) -> Any:
    """A ``pyhessian.hessian`` on a copy of the workload's model: streamed over
    ``batch_size`` batches when given (a list of them, or with ``loader`` a DataLoader),
    else the whole set as one batch."""
    from pyhessian import hessian

    model = copy.deepcopy(w.model)
    cuda = w.device.type == "cuda"
    with warnings.catch_warnings():  # its backward(create_graph=True) is by design here
        warnings.filterwarnings("ignore", message=r"Using backward\(\) with create_graph=True")
        if batch_size is None:
            return hessian(model, w.loss_fn, data=(w.inputs, w.targets), cuda=cuda)
        data = w.loader(batch_size) if loader else w.data(batch_size)
        return hessian(model, w.loss_fn, dataloader=data, cuda=cuda)


def seeded_call(h: Any, method: str, seed: int, **kwargs: Any) -> Call:
    """``h.<method>(**kwargs)`` as a closure that seeds PyHessian's global-RNG draws with
    ``seed`` on every call and restores the caller's RNG state afterwards."""
    return global_seeded(lambda: getattr(h, method)(**kwargs), seed, h.params[0].device)


def _run(w: Workload, method: str, seed: int, batch_size: int | None,
         **kwargs: Any) -> PyHessianRun:
    call = seeded_call(pyhessian_hessian(w, batch_size), method, seed, **kwargs)
    with count_hvps() as counter:
        t0 = time.perf_counter()
        try:
            value, error = call(), None
        except Exception as exc:  # reported, never hidden: see PyHessianRun.error
            value, error = None, f"{type(exc).__name__}: {exc}"
        seconds = time.perf_counter() - t0
    return PyHessianRun(value=value, hvps=counter.count, seconds=seconds, error=error)


def pyhessian_eigenvalues(w: Workload, top_n: int, *, seed: int = 0, tol: float = 1e-3,
                          max_iter: int = 100, batch_size: int | None = None) -> PyHessianRun:
    """``hessian.eigenvalues(top_n=...)`` (deflated power iteration, PyHessian defaults);
    ``value`` is the list of eigenvalues."""
    run = _run(w, "eigenvalues", seed, batch_size, top_n=top_n, tol=tol, maxIter=max_iter)
    return run if run.error else PyHessianRun([float(x) for x in run.value[0]], run.hvps,
                                              run.seconds)


def pyhessian_trace(w: Workload, *, seed: int = 0, tol: float = 1e-3, max_iter: int = 100,
                    batch_size: int | None = None) -> PyHessianRun:
    """``hessian.trace()`` (Hutchinson, stops on a relative change < tol of the running
    mean); ``value`` is the mean of its samples, PyHessian's trace estimate."""
    run = _run(w, "trace", seed, batch_size, tol=tol, maxIter=max_iter)
    if run.error:
        return run
    samples = [float(x) for x in run.value]
    return PyHessianRun(sum(samples) / len(samples), run.hvps, run.seconds)


def pyhessian_density(w: Workload, *, seed: int = 0, iterations: int = 100, n_v: int = 1,
                      batch_size: int | None = None) -> PyHessianRun:
    """``hessian.density()`` (SLQ); ``value`` is (nodes, weights) lists per probe, or the
    error it raised (it calls ``torch.eig``, removed from torch 2.x)."""
    return _run(w, "density", seed, batch_size, iter=iterations, n_v=n_v)


def pyhessian_hvp_fn(h: Any, seed: int = 0) -> Call:
    """One PyHessian HVP with a fixed random vector: ``hessian_vector_product`` on the
    gradient graph it retained at construction (single batch), or its
    ``dataloader_hv_product`` (a forward and double backward per batch) for a loader."""
    from pyhessian.utils import hessian_vector_product

    gen = torch.Generator().manual_seed(seed)
    v = [torch.randn(p.shape, generator=gen, dtype=p.dtype).to(p.device) for p in h.params]
    if h.full_dataset:
        return lambda: h.dataloader_hv_product(v)
    return lambda: hessian_vector_product(h.gradsH, h.params, v)


class PyHessian(Implementation[Any]):
    """PyHessian's ``hessian`` class with its defaults: HVPs on the retained gradient
    graph (or per batch of a loader), deflated power iteration, Hutchinson trace, SLQ
    density; it has no block product and no exact spectrum."""

    name = "pyhessian"
    requires = "pyhessian"

    def prepare(self, w: Workload, batch_size: int | None = None) -> Any:
        return pyhessian_hessian(w, batch_size)

    def hvp(self, h: Any) -> Call:
        return pyhessian_hvp_fn(h)

    def top_eigenvalues(self, h: Any, k: int) -> Call:
        return seeded_call(h, "eigenvalues", 0, top_n=k)

    def trace(self, h: Any) -> Call:
        return seeded_call(h, "trace", 0)

    def density(self, h: Any) -> Call:
        """``density(iter=100, n_v=1)``, after a two-step probe: it calls ``torch.eig``
        (removed in torch 1.9), and where it crashes it counts as missing."""
        try:
            seeded_call(h, "density", 0, iter=2, n_v=1)()
        except Exception as exc:  # the crash is the finding: report it as the reason
            raise NotImplementedError(f"PyHessian density() crashes: {type(exc).__name__}: "
                                      f"{str(exc).splitlines()[0]}") from exc
        return seeded_call(h, "density", 0, iter=100, n_v=1)


IMPLEMENTATIONS: dict[str, type[Implementation]] = {
    "hessbench": Hessbench, "pyhessian": PyHessian, "curvlinops": Curvlinops,
    "eigenthings": HessianEigenthings}
"""hessbench, then the peers; a peer that is not installed is skipped with a message
(:meth:`Implementation.available`)."""
