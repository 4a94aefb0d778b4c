"""Which dtype gives which eigsh accuracy: top-k eigenvalues of the bench workload ``mlp``
(4270 parameters, trained) from a float32 and a float64 operator, against a float64
reference at tol = 1e-11.

    OMP_NUM_THREADS=1 python benchmarks/eigsh_dtype_accuracy.py [--k 5] [--tols 1e-3 1e-4 1e-5 1e-6]

Prints per dtype and tol: converged, the noise floor (relative to |theta|max), the
largest reported residual (relative) and the largest true relative eigenvalue error.
"""
from __future__ import annotations

import argparse
import warnings

import numpy as np
import torch

import hessbench as hb
from hessbench.bench.workloads import get_workload


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--tols", type=float, nargs="+", default=[1e-3, 1e-4, 1e-5, 1e-6])
    args = parser.parse_args()
    torch.set_num_threads(1)
    w = get_workload("mlp")
    ops = {"float32": w.hessian(), "float64": w.hessian(dtype=torch.float64)}
    ref = hb.eigsh(ops["float64"], k=args.k, tol=1e-11).values
    print(f"reference (float64, tol 1e-11): {np.array2string(ref, precision=6)}")
    print("| dtype | tol | converged | noise floor / |theta|max | max residual / |theta|max "
          "| max rel. eigenvalue error | matvecs |")
    print("|---|---|---|---|---|---|---|")
    for dtype, op in ops.items():
        for tol in args.tols:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", hb.ConvergenceWarning)
                r = hb.eigsh(op, k=args.k, tol=tol)
            top = float(np.abs(r.values).max())
            err = float(np.max(np.abs(r.values - ref) / np.abs(ref)))
            print(f"| {dtype} | {tol:.0e} | {r.converged} | {r.noise_floor / top:.1e} | "
                  f"{r.residuals.max() / top:.1e} | {err:.1e} | {r.matvecs} |", flush=True)


if __name__ == "__main__":
    main()
