"""Hessian-vector products on the fixed workloads (:mod:`hessbench.bench.workloads`:
4270-parameter MLP on 1000 samples, small CNN on 1000 digits, ResNet-18 on a batch of
32): one HVP, a block of HVPs, the product modes of ``hb.hessian``, and the gradient
every HVP is measured against."""
from __future__ import annotations

from hessbench.bench.impls import Call, Implementation, hvp_fn
from hessbench.bench.specs import BLOCK, HEAVY, HEAVY_BLOCK
from hessbench.bench.workloads import Workload, get_workload, gradient_fn

from ._common import IMPLS, WORKLOADS, Operation, bench_device


class Gradient:
    """One full-data gradient by plain autograd (forward + backward): the reference cost,
    the same whatever the implementation."""

    params = [WORKLOADS]
    param_names = ["workload"]
    timeout = 600

    def setup(self, workload: str) -> None:
        self.grad = gradient_fn(get_workload(workload, bench_device()))

    def time_gradient(self, workload: str) -> None:
        self.grad()


class Hvp(Operation):
    """One HVP with a fixed random vector, on the whole set as one batch (hessbench keeps
    the gradient's graph between products, PyHessian retains it at construction) or
    streamed over batches of ``stream_batch`` samples (a forward and double backward per
    batch)."""

    params = [IMPLS, WORKLOADS, ["batch", "streamed"]]
    param_names = ["impl", "workload", "data"]

    def make(self, impl: Implementation, w: Workload, data: object) -> Call:
        return impl.hvp(impl.prepare(w, w.stream_batch if data == "streamed" else None))

    def time_hvp(self, *_: object) -> None:
        self.run()

    def peakmem_hvp(self, *_: object) -> None:
        self.run()


class HvpBlock(Operation):
    """One product with a fixed random block of 16 vectors (4 on ResNet-18)."""

    def make(self, impl: Implementation, w: Workload) -> Call:
        return impl.hvp_block(impl.prepare(w), HEAVY_BLOCK if w.name in HEAVY else BLOCK)

    def time_hvp_block(self, *_: object) -> None:
        self.run()


class HvpModes:
    """One HVP by each product mode of ``hb.hessian`` (hessbench's own options, so no
    ``impl`` parameter): reverse-over-reverse with the gradient's graph kept (the default
    for one batch), rebuilt per product, and forward-over-reverse."""

    MODES = {"reverse-kept": {}, "reverse": {"keep_graph": False}, "forward": {"hvp": "forward"}}
    params = [WORKLOADS, list(MODES)]
    param_names = ["workload", "mode"]
    timeout = 600

    def setup(self, workload: str, mode: str) -> None:
        self.hvp = hvp_fn(get_workload(workload, bench_device()).hessian(**self.MODES[mode]))

    def time_hvp(self, workload: str, mode: str) -> None:
        self.hvp()
