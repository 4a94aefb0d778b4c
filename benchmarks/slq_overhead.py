"""SLQ overhead: the share of ``hb.spectral_density``'s wall time spent outside the
Hessian-vector products, on the bench workload ``mlp`` (4270 parameters, trained).

    OMP_NUM_THREADS=1 python benchmarks/slq_overhead.py [--probes 8] [--steps 80] [--repeats 5]

The operator's block product is wrapped by a timer, so "inside" is the wall time of
every ``op.matmat`` call (the HVPs and their float64 casts), "outside" is the rest of
the call (reorthogonalisation, norms, the tridiagonal eigenproblems). Prints, per
repeat and as the median, total seconds, HVP seconds and the outside share, and the
load average (the machine may be shared).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

import hessbench as hb
from hessbench.bench.workloads import get_workload


def timed(op: hb.CurvatureOperator) -> list[float]:
    """Wrap ``op``'s block product so that each call's wall time is appended to a list."""
    spent: list[float] = []
    inner = op._mat

    def mat(V: torch.Tensor) -> torch.Tensor:
        t0 = time.perf_counter()
        out = inner(V)
        spent.append(time.perf_counter() - t0)
        return out

    op._mat = mat
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probes", type=int, default=8)
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workload", default="mlp")
    args = parser.parse_args()
    torch.set_num_threads(1)
    op = get_workload(args.workload).hessian()
    spent = timed(op)
    hb.spectral_density(op, num_probes=args.probes, lanczos_steps=args.steps, seed=0)  # warm-up
    shares = []
    for r in range(args.repeats):
        spent.clear()
        t0 = time.perf_counter()
        hb.spectral_density(op, num_probes=args.probes, lanczos_steps=args.steps, seed=r)
        total = time.perf_counter() - t0
        inside = sum(spent)
        shares.append((total - inside) / total)
        print(f"repeat {r}: total {total:.3f} s, HVPs {inside:.3f} s, outside {shares[-1]:.1%}")
    print(f"{args.workload} n={op.num_params} probes={args.probes} steps={args.steps}: "
          f"median outside share {statistics.median(shares):.1%}; load {os.getloadavg()}")


if __name__ == "__main__":
    main()
