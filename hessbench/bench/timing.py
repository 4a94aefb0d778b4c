"""Same-process wall-clock timing: repeated samples of one call, and the ratio of two
calls sampled interleaved.

Each sample is the mean over enough calls to last ``min_sample`` seconds, with CUDA
synchronised before and after, so that timer resolution and asynchronous launches do
not bias short calls. A ratio samples its two sides interleaved (a, b, a, b, ...), so
that load drift on a shared machine hits both sides alike, and by default compares the
fastest samples: load only ever adds time, so the minimum is the least disturbed
estimate.
"""
from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

__all__ = ["Timing", "time_call", "time_ratio"]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass(frozen=True)
class Timing:
    """Seconds per call: one sample per repeat (each the mean of ``number`` calls)."""

    samples: tuple[float, ...]
    number: int = 1

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def min(self) -> float:
        return min(self.samples)


def _sample(fn: Callable[[], object], number: int, device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(number):
        fn()
    _sync(device)
    return (time.perf_counter() - t0) / number


def _calls_per_sample(fn: Callable[[], object], min_sample: float,
                      device: torch.device) -> int:
    """Calls per sample so that one sample lasts about ``min_sample`` seconds."""
    once = _sample(fn, 1, device)   # doubles as the warm-up call
    return max(1, math.ceil(min_sample / max(once, 1e-9)))


def _check_repeats(repeats: int) -> None:
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")


def time_call(fn: Callable[[], object], repeats: int = 5, warmup: int = 1,
              device: torch.device | str = "cpu", min_sample: float = 0.0) -> Timing:
    """``repeats`` samples of ``fn()`` after ``warmup`` calls; each sample averages enough
    calls to last ``min_sample`` seconds (one call when 0)."""
    _check_repeats(repeats)
    device = torch.device(device)
    for _ in range(warmup):
        fn()
    number = _calls_per_sample(fn, min_sample, device) if min_sample > 0 else 1
    return Timing(tuple(_sample(fn, number, device) for _ in range(repeats)), number)


def time_ratio(numerator: Callable[[], object], denominator: Callable[[], object],
               repeats: int = 5, warmup: int = 1, device: torch.device | str = "cpu",
               min_sample: float = 0.02, stat: str = "min"
               ) -> tuple[float, Timing, Timing]:
    """time(numerator) / time(denominator), sampled interleaved (a, b, a, b, ...) in one
    process; each sample lasts at least ``min_sample`` s.

    ``stat="min"`` (default) compares the fastest samples, ``"median"`` the medians.
    """
    _check_repeats(repeats)
    if stat not in ("min", "median"):
        raise ValueError(f"stat must be 'min' or 'median', got {stat!r}")
    device = torch.device(device)
    for _ in range(warmup):
        numerator()
        denominator()
    na = _calls_per_sample(numerator, min_sample, device)
    nb = _calls_per_sample(denominator, min_sample, device)
    a, b = [], []
    for _ in range(repeats):
        a.append(_sample(numerator, na, device))
        b.append(_sample(denominator, nb, device))
    ta, tb = Timing(tuple(a), na), Timing(tuple(b), nb)
    return getattr(ta, stat) / getattr(tb, stat), ta, tb
