"""The device every suite runs on: ``$HESSBENCH_BENCH_DEVICE`` (default ``cpu``;
``cuda`` or ``auto`` to time a GPU)."""
from __future__ import annotations

import os

import torch

from hessbench.utils import resolve_device


def bench_device() -> torch.device:
    return resolve_device(os.environ.get("HESSBENCH_BENCH_DEVICE", "cpu"))


def skip_heavy_on_cpu(workload: str, what: str) -> None:
    """asv skips a parameter combination whose setup raises NotImplementedError."""
    if workload == "resnet18" and bench_device().type == "cpu":
        raise NotImplementedError(f"{what} on ResNet-18 takes minutes per call on a CPU; "
                                  f"set HESSBENCH_BENCH_DEVICE=cuda")
