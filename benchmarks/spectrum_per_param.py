"""Exact spectrum cost per parameter: ``hb.spectrum`` on the bench workloads ``mlp``
(4270 parameters) and ``cnn`` (1954), split into the dense build (one Hessian column
per parameter, in blocks) and LAPACK's eigvalsh.

    OMP_NUM_THREADS=1 python benchmarks/spectrum_per_param.py [--widths 16 256] [--repeats 2]

For each block width, the dense build is timed per column (min over repeats: load only
adds time) and the whole spectrum estimated as n x that + the timed eigvalsh; prints
seconds per parameter and the CNN / MLP ratio, then times one full ``hb.spectrum`` per
workload at dense()'s default width as a check, and the load average.
"""
from __future__ import annotations

import argparse
import os
import time

import torch

import hessbench as hb
from hessbench.bench.workloads import get_workload
from hessbench.linalg import symmetric_eigvalsh


def columns_time(op: hb.CurvatureOperator, width: int, columns: int, repeats: int) -> float:
    """Seconds per column of the dense build at ``width`` columns per block (min over
    ``repeats`` builds of the first ``columns`` identity columns)."""
    n, best = op.num_params, float("inf")
    saved, op.chunk_size = op.chunk_size, width
    try:
        for _ in range(repeats):
            t0 = time.perf_counter()
            for i in range(0, columns, width):
                E = torch.zeros(n, min(width, columns - i), dtype=op.dtype)
                E[torch.arange(i, i + E.shape[1]), torch.arange(E.shape[1])] = 1.0
                op.matmat(E)
            best = min(best, (time.perf_counter() - t0) / columns)
    finally:
        op.chunk_size = saved
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[8, 16, 32, 256])
    parser.add_argument("--columns", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    ops = {name: get_workload(name).hessian() for name in ("mlp", "cnn")}
    eig = {}
    for name, op in ops.items():
        n = op.num_params
        A = torch.randn(n, n, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        t0 = time.perf_counter()
        symmetric_eigvalsh(A)
        eig[name] = time.perf_counter() - t0
    for width in args.widths:
        per = {name: (columns_time(op, width, args.columns, args.repeats) * op.num_params
                      + eig[name]) / op.num_params for name, op in ops.items()}
        print(f"width {width:4d}: " + ", ".join(f"{k} {v * 1e3:.2f} ms/param" for k, v in
                                                 per.items())
              + f"; cnn / mlp {per['cnn'] / per['mlp']:.2f}", flush=True)
    for name, op in ops.items():
        t0 = time.perf_counter()
        hb.spectrum(op)
        total = time.perf_counter() - t0
        print(f"hb.spectrum({name}): {total:.1f} s, {total / op.num_params * 1e3:.2f} ms/param "
              f"(eigvalsh {eig[name]:.1f} s)", flush=True)
    print(f"load {os.getloadavg()}")


if __name__ == "__main__":
    main()
