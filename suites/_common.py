"""What every suite shares: the device (``$HESSBENCH_BENCH_DEVICE``, default ``cpu``;
``cuda`` or ``auto`` to time a GPU), the implementations compared (the ``impl``
parameter) and the workloads.

asv skips a parameter combination whose ``setup`` raises ``NotImplementedError``: an
implementation that is not installed, an operation it does not offer, or a heavy
workload on a CPU.
"""
from __future__ import annotations

import os

import torch

from hessbench.bench.impls import Call, Implementation
from hessbench.bench.peers import IMPLEMENTATIONS
from hessbench.bench.specs import HEAVY
from hessbench.bench.workloads import Workload, get_workload
from hessbench.utils import resolve_device

IMPLS = list(IMPLEMENTATIONS)
WORKLOADS = ["mlp", "cnn", "resnet18"]
SMALL = ["mlp", "cnn"]   # workloads whose dense Hessian fits


def bench_device() -> torch.device:
    return resolve_device(os.environ.get("HESSBENCH_BENCH_DEVICE", "cpu"))


def implementation(name: str) -> Implementation:
    """The named implementation; NotImplementedError (skip) when it is not installed."""
    cls = IMPLEMENTATIONS[name]
    if not cls.available():
        raise NotImplementedError(f"{name} is not installed (no module {cls.requires!r})")
    return cls()


def skip_heavy_on_cpu(workload: str, what: str) -> None:
    """Skip ``what`` on a heavy workload (ResNet-18) unless the suites run on a GPU."""
    if workload in HEAVY and bench_device().type == "cpu":
        raise NotImplementedError(f"{what} on ResNet-18 takes minutes per call on a CPU; "
                                  f"set HESSBENCH_BENCH_DEVICE=cuda")


class Operation:
    """A suite of one implementation's operation on one workload: ``setup`` builds the
    workload, and :meth:`make` turns it into the zero-argument callable ``self.run`` that
    the ``time_*`` / ``peakmem_*`` methods call. By default :meth:`make` calls the
    :class:`~hessbench.bench.impls.Implementation` method named :attr:`operation` on the
    implementation's Hessian object, with the parameters after ``impl`` and ``workload``."""

    params: list[list[object]] = [IMPLS, WORKLOADS]
    param_names = ["impl", "workload"]
    timeout = 600
    operation: str
    heavy = False   # skipped on a heavy workload on a CPU

    def make(self, impl: Implementation, w: Workload, *params: object) -> Call:
        """The timed callable of ``impl`` on ``w``."""
        return getattr(impl, self.operation)(impl.prepare(w), *params)

    def setup(self, impl: str, workload: str, *params: object) -> None:
        if self.heavy:
            skip_heavy_on_cpu(workload, type(self).__name__)
        self.run = self.make(implementation(impl), get_workload(workload, bench_device()),
                             *params)


class Solver(Operation):
    """An :class:`Operation` that takes seconds: one call per sample, no warm-up, skipped on
    a heavy workload on a CPU."""

    timeout = 1200
    number = 1
    repeat = (1, 5, 60.0)
    warmup_time = 0.0
    heavy = True
