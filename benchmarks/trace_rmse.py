"""Accuracy of hb.trace's estimators: relative RMSE over seeds of Hutchinson, Hutch++ and
XTrace at equal budgets of products, on the bench workloads ``mlp`` (trained: positive
outliers over a bulk) and ``mlp-init`` (at initialisation: indefinite, nearly symmetric).

    OMP_NUM_THREADS=1 python benchmarks/trace_rmse.py [--seeds 40] [--budgets 99 300 999]

Each workload's Hessian is built once as a dense float64 matrix (the estimators only see
products, so this changes their cost, not their results) and its exact trace is the sum
of its diagonal. Prints, per workload, budget and method: relative RMSE
sqrt(mean (t - tr)^2) / |tr| with its standard error (delta method over seeds), and the
mean reported stderr relative to |tr| (how well each error estimate tracks the RMSE).
"""
from __future__ import annotations

import argparse
import math
import os

import numpy as np
import torch

import hessbench as hb
from hessbench.bench.workloads import get_workload

METHODS = ("hutchinson", "hutch++", "xtrace")


def rmse_row(H: torch.Tensor, exact: float, method: str, budget: int,
             seeds: range) -> tuple[float, float, float]:
    """(relative RMSE, its standard error, mean reported stderr / |tr|) over ``seeds``."""
    res = [hb.trace(H, method, num_matvecs=budget, seed=s) for s in seeds]
    sq = np.array([(r.value - exact) ** 2 for r in res]) / exact ** 2
    rmse = math.sqrt(sq.mean())
    # delta method: sd(sqrt(mean sq)) ~ sd(sq) / (2 sqrt(S) rmse)
    se = sq.std(ddof=1) / (2 * math.sqrt(len(sq)) * rmse) if rmse > 0 else 0.0
    return rmse, se, float(np.mean([r.stderr for r in res])) / abs(exact)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=40)
    parser.add_argument("--budgets", type=int, nargs="+", default=[99, 300, 999])
    parser.add_argument("--workloads", nargs="+", default=["mlp", "mlp-init"])
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    print("| workload | matvecs | " + " | ".join(f"{m} RMSE (stderr est.)" for m in METHODS)
          + " |")
    print("|---|---|" + "---|" * len(METHODS))
    for name in args.workloads:
        H = get_workload(name).hessian(dtype=torch.float64).dense()
        H = (H + H.T) / 2
        exact = float(torch.trace(H))
        for budget in args.budgets:
            cells = []
            for method in METHODS:
                rmse, se, est = rmse_row(H, exact, method, budget, range(args.seeds))
                cells.append(f"{rmse:.2%} +- {se:.2%} ({est:.2%})")
            print(f"| {name} (tr = {exact:.4g}) | {budget} | " + " | ".join(cells) + " |",
                  flush=True)
    print(f"seeds {args.seeds}; load {os.getloadavg()}")


if __name__ == "__main__":
    main()
