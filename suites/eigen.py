"""The k largest Hessian eigenvalues on the fixed workloads: ``hb.eigsh`` (thick-restart
Lanczos, residual tolerance 1e-6), PyHessian's ``eigenvalues(top_n=k)`` (deflated power
iteration, stopping on an eigenvalue change < 1e-3), ARPACK on curvlinops' operator and
hessian-eigenthings' Lanczos (when installed)."""
from __future__ import annotations

from hessbench.bench.specs import TOP_K

from ._common import IMPLS, WORKLOADS, Solver


class TopEigenvalues(Solver):
    """Top-k eigenvalues, k = 1, 5, 20 (skipped for ResNet-18 on a CPU)."""

    params = [IMPLS, WORKLOADS, list(TOP_K)]
    param_names = ["impl", "workload", "k"]
    operation = "top_eigenvalues"

    def time_top_eigenvalues(self, *_: object) -> None:
        self.run()

    def peakmem_top_eigenvalues(self, *_: object) -> None:
        """Peak memory (process RSS, asv's peakmem) of one top-k solve: on ResNet-18
        (with ``HESSBENCH_BENCH_DEVICE=cuda``) hessbench's kept graph vs PyHessian's. On a
        CPU, ``benchmarks/resnet18_top5_memory.py`` measures the ResNet-18 top-5 once per
        implementation, each in a fresh process."""
        self.run()
