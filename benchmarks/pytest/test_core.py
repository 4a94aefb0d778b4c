"""The Hessian core's micro-benchmarks as pytest-benchmark tests, on the workloads and
settings of the asv suites (``suites/``; :mod:`hessbench.bench.workloads`,
:mod:`hessbench.bench.specs`) and through the same implementation interface
(:data:`hessbench.bench.peers.IMPLEMENTATIONS`: hessbench and every installed peer).

    .venv/bin/pytest benchmarks/pytest --benchmark-only                # all, ~minutes
    .venv/bin/pytest benchmarks/pytest --benchmark-only -k "hvp and mlp"
    .venv/bin/pytest benchmarks/pytest --benchmark-only --benchmark-autosave
    .venv/bin/pytest benchmarks/pytest --benchmark-only --benchmark-compare

Not under ``tests/`` (the CI's ``pytest tests`` stays fast); a peer that is not installed,
or an operation it lacks, is skipped with the reason. ResNet-18 runs only with
``HESSBENCH_BENCH_DEVICE=cuda``, as in the asv suites.
"""
from __future__ import annotations

import os
from functools import cache

import pytest

from hessbench.bench.impls import Implementation
from hessbench.bench.peers import IMPLEMENTATIONS
from hessbench.bench.specs import BLOCK, HEAVY, HEAVY_BLOCK
from hessbench.bench.workloads import Workload, get_workload, gradient_fn
from hessbench.utils import resolve_device

DEVICE = resolve_device(os.environ.get("HESSBENCH_BENCH_DEVICE", "cpu"))
WORKLOADS = ["mlp", "cnn", "resnet18"]
SMALL = ["mlp", "cnn"]   # workloads whose dense Hessian fits
SOLVER_ROUNDS = 3        # rounds of a solver benchmark (each takes seconds)


@cache
def workload(name: str) -> Workload:
    if name in HEAVY and DEVICE.type == "cpu":
        pytest.skip(f"{name} takes minutes per call on a CPU; set HESSBENCH_BENCH_DEVICE=cuda")
    return get_workload(name, DEVICE)


def implementation(name: str) -> Implementation:
    cls = IMPLEMENTATIONS[name]
    if not cls.available():
        pytest.skip(f"{name} is not installed (no module {cls.requires!r})")
    return cls()


def operation(impl: str, name: str, what: str, *args, batch_size: int | None = None):
    """The timed callable of ``impl``'s ``what`` on workload ``name`` (skips where absent)."""
    i, w = implementation(impl), workload(name)
    try:
        return getattr(i, what)(i.prepare(w, batch_size), *args)
    except NotImplementedError as exc:
        pytest.skip(str(exc))


@pytest.mark.parametrize("name", WORKLOADS)
def test_gradient(benchmark, name):
    benchmark(gradient_fn(workload(name)))


@pytest.mark.parametrize("data", ["batch", "streamed"])
@pytest.mark.parametrize("name", WORKLOADS)
@pytest.mark.parametrize("impl", list(IMPLEMENTATIONS))
def test_hvp(benchmark, impl, name, data):
    w = workload(name)
    benchmark(operation(impl, name, "hvp",
                        batch_size=w.stream_batch if data == "streamed" else None))


@pytest.mark.parametrize("name", WORKLOADS)
@pytest.mark.parametrize("impl", list(IMPLEMENTATIONS))
def test_hvp_block(benchmark, impl, name):
    benchmark(operation(impl, name, "hvp_block", HEAVY_BLOCK if name in HEAVY else BLOCK))


def _solver(benchmark, fn) -> None:
    benchmark.pedantic(fn, rounds=SOLVER_ROUNDS, iterations=1, warmup_rounds=0)


@pytest.mark.parametrize("name", SMALL)
@pytest.mark.parametrize("impl", list(IMPLEMENTATIONS))
def test_top5_eigenvalues(benchmark, impl, name):
    _solver(benchmark, operation(impl, name, "top_eigenvalues", 5))


@pytest.mark.parametrize("name", SMALL)
@pytest.mark.parametrize("impl", list(IMPLEMENTATIONS))
def test_trace(benchmark, impl, name):
    _solver(benchmark, operation(impl, name, "trace"))


@pytest.mark.parametrize("name", SMALL)
@pytest.mark.parametrize("impl", list(IMPLEMENTATIONS))
def test_density(benchmark, impl, name):
    _solver(benchmark, operation(impl, name, "density"))


@pytest.mark.parametrize("name", ["mlp"])
@pytest.mark.parametrize("impl", list(IMPLEMENTATIONS))
def test_dense_spectrum(benchmark, impl, name):
    benchmark.pedantic(operation(impl, name, "spectrum"), rounds=1, iterations=1)
