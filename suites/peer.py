"""PyHessian on the same workloads as ``core.py``, so hessbench / PyHessian ratios come
from one run. PyHessian's ``density()`` calls ``torch.eig`` (removed in torch 1.9), so
its benchmark is skipped on current torch (see :class:`PyHessianDensity`)."""
from __future__ import annotations

from hessbench.bench_pyhessian import pyhessian_hessian, pyhessian_hvp_fn, seeded_call
from hessbench.bench_workloads import get_workload

from ._device import bench_device, skip_heavy_on_cpu

WORKLOADS = ["mlp", "cnn", "resnet18"]


class PyHessianProducts:
    """PyHessian's HVP on its retained gradient graph, and over a data loader."""

    params = [WORKLOADS]
    param_names = ["workload"]
    timeout = 600

    def setup(self, workload: str) -> None:
        w = get_workload(workload, bench_device())
        self.hvp = pyhessian_hvp_fn(pyhessian_hessian(w))
        self.streamed = pyhessian_hvp_fn(pyhessian_hessian(w, w.stream_batch))

    def time_hvp(self, workload: str) -> None:
        self.hvp()

    def time_hvp_streamed(self, workload: str) -> None:
        self.streamed()

    def peakmem_hvp(self, workload: str) -> None:
        self.hvp()


class PyHessianSpectra:
    """PyHessian eigenvalues(top_n), trace() and density() with its defaults."""

    params = [WORKLOADS]
    param_names = ["workload"]
    timeout = 1200
    number = 1
    repeat = (1, 5, 60.0)
    warmup_time = 0.0

    def setup(self, workload: str) -> None:
        skip_heavy_on_cpu(workload, "PyHessian eigenvalues, trace and density")
        self.h = pyhessian_hessian(get_workload(workload, bench_device()))

    def time_eigenvalues_top1(self, workload: str) -> None:
        seeded_call(self.h, "eigenvalues", 0, top_n=1)()

    def time_eigenvalues_top5(self, workload: str) -> None:
        seeded_call(self.h, "eigenvalues", 0, top_n=5)()

    def time_eigenvalues_top20(self, workload: str) -> None:
        seeded_call(self.h, "eigenvalues", 0, top_n=20)()

    def time_trace(self, workload: str) -> None:
        seeded_call(self.h, "trace", 0)()


class PyHessianDensity:
    """PyHessian density(iter=100, n_v=1). It calls ``torch.eig``, removed in torch 1.9:
    where it crashes the benchmark is skipped (n/a; a failing benchmark would make every
    ``asv run`` exit non-zero), and ``hessbench bench compare`` prints the error."""

    params = [["mlp", "cnn"]]
    param_names = ["workload"]
    timeout = 600
    number = 1
    repeat = (1, 3, 60.0)
    warmup_time = 0.0

    def setup(self, workload: str) -> None:
        self.h = pyhessian_hessian(get_workload(workload, bench_device()))
        try:
            seeded_call(self.h, "density", 0, iter=2, n_v=1)()
        except Exception as exc:  # the crash is the finding: skip, naming it
            raise NotImplementedError(f"PyHessian density() crashes: {type(exc).__name__}: "
                                      f"{str(exc).splitlines()[0]}") from exc

    def time_density(self, workload: str) -> None:
        seeded_call(self.h, "density", 0, iter=100, n_v=1)()
