"""Timings and peak memory of hessbench's Hessian core on the fixed workloads
(:mod:`hessbench.bench_workloads`: 4270-parameter MLP on 1000 samples, small CNN on
1000 digits, ResNet-18 on a batch of 32)."""
from __future__ import annotations

import hessbench as hb
from hessbench.bench_gate import BLOCK
from hessbench.bench_workloads import get_workload, gradient_fn, hvp_fn

from ._device import bench_device, skip_heavy_on_cpu

WORKLOADS = ["mlp", "cnn", "resnet18"]


class Products:
    """One gradient, one HVP, a block of HVPs, and an HVP streamed over batches."""

    params = [WORKLOADS]
    param_names = ["workload"]
    timeout = 600

    def setup(self, workload: str) -> None:
        w = get_workload(workload, bench_device())
        self.op = w.hessian()
        self.grad = gradient_fn(w)
        self.hvp = hvp_fn(self.op)
        self.block = hvp_fn(self.op, 4 if workload == "resnet18" else BLOCK)
        self.streamed = hvp_fn(w.hessian(batch_size=w.stream_batch))

    def time_gradient(self, workload: str) -> None:
        self.grad()

    def time_hvp(self, workload: str) -> None:
        self.hvp()

    def time_hvp_block(self, workload: str) -> None:
        self.block()

    def time_hvp_streamed(self, workload: str) -> None:
        self.streamed()

    def peakmem_hvp(self, workload: str) -> None:
        self.hvp()


class HvpModes:
    """One HVP by each product mode of ``hb.hessian``: reverse-over-reverse with the
    gradient's graph kept (the default for one batch), rebuilt per product, and
    forward-over-reverse."""

    MODES = {"reverse-kept": {}, "reverse": {"keep_graph": False}, "forward": {"hvp": "forward"}}
    params = [WORKLOADS, list(MODES)]
    param_names = ["workload", "mode"]
    timeout = 600

    def setup(self, workload: str, mode: str) -> None:
        self.hvp = hvp_fn(get_workload(workload, bench_device()).hessian(**self.MODES[mode]))

    def time_hvp(self, workload: str, mode: str) -> None:
        self.hvp()


class Spectra:
    """Top-k eigenvalues (Lanczos, tol 1e-6), Hutch++ trace, SLQ density."""

    params = [WORKLOADS]
    param_names = ["workload"]
    timeout = 1200
    number = 1
    repeat = (1, 5, 60.0)
    warmup_time = 0.0

    def setup(self, workload: str) -> None:
        skip_heavy_on_cpu(workload, "eigensolvers, trace and density")
        self.op = get_workload(workload, bench_device()).hessian()

    def _eigsh(self, k: int) -> None:
        hb.eigsh(self.op, k=k, tol=1e-6, seed=0, return_vectors=False, on_unconverged="ignore")

    def time_eigsh_top1(self, workload: str) -> None:
        self._eigsh(1)

    def time_eigsh_top5(self, workload: str) -> None:
        self._eigsh(5)

    def time_eigsh_top20(self, workload: str) -> None:
        self._eigsh(20)

    def time_trace_hutchpp(self, workload: str) -> None:
        hb.trace(self.op, "hutch++", num_matvecs=100, seed=0)

    def time_spectral_density(self, workload: str) -> None:
        hb.spectral_density(self.op, num_probes=8, lanczos_steps=80, seed=0)


class ExactSpectrum:
    """All eigenvalues from the dense Hessian (small models only)."""

    params = [["mlp", "cnn"]]
    param_names = ["workload"]
    timeout = 1200
    number = 1
    repeat = (1, 3, 120.0)
    warmup_time = 0.0

    def setup(self, workload: str) -> None:
        self.op = get_workload(workload, bench_device()).hessian()

    def time_spectrum(self, workload: str) -> None:
        hb.spectrum(self.op)

    def peakmem_spectrum(self, workload: str) -> None:
        hb.spectrum(self.op)
