"""Deterministic figures (``track_*``) and same-run time ratios, from the functions the
CI gate uses (:mod:`hessbench.bench.measure`, specified in :mod:`hessbench.bench.specs`),
so asv's history and the gate agree. Both cover hessbench and PyHessian at once, so they
take no ``impl`` parameter.

``Figures`` needs the dense float64 Hessian of the MLP and the Hutch++ scan (minutes on
a CPU), computed once in ``setup_cache``; ``Ratios`` times each ratio interleaved in one
process."""
from __future__ import annotations

from collections.abc import Callable

from hessbench.bench.measure import measure_ratios, measure_track
from hessbench.bench.specs import RATIO, TRACK

from ._common import bench_device


def _figure(key: str, unit: str) -> Callable[[object, dict[str, float]], float]:
    def track(self: object, figures: dict[str, float]) -> float:
        return figures[key]

    track.unit = unit
    return track


class Figures:
    """Matvec counts and errors against the exact spectrum (MLP, float64)."""

    timeout = 1800

    def setup_cache(self) -> dict[str, float]:
        return measure_track(bench_device(), scan=True)


Figures.setup_cache.timeout = 1800
for _key, _spec in TRACK.items():
    setattr(Figures, "track_" + _key.split(".", 1)[1], _figure(_key, _spec.unit))


class Ratios:
    """hessbench time / reference time: the ratio of the fastest of 7 samples per side,
    taken interleaved in one process."""

    timeout = 1800

    def setup_cache(self) -> dict[str, float]:
        return measure_ratios(bench_device(), repeats=7)


Ratios.setup_cache.timeout = 1800
for _key in RATIO:
    setattr(Ratios, "track_" + _key.replace(".", "_"), _figure(_key, "ratio"))
