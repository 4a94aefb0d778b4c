"""Peak memory and wall time of one top-5 eigenvalue solve on ResNet-18 (11.2M
parameters, batch 32; :mod:`hessbench.bench.workloads`), every installed implementation
with its own solver and stopping rule (``Implementation.top_eigenvalues``), each in a
fresh process, since peak RSS is a per-process figure (what asv's ``peakmem_`` reads).

Per implementation: the peak RSS once the workload and the implementation's Hessian
object are built, the peak after the solve, their difference (what the solve added),
the wall time of the solve, the solver's own converged flag (PyHessian has none) and the
five largest eigenvalues; for hessbench also the share of the products (its matvecs x the
median of 3 timed products), the rest being the solver's own work. The asv suite's
``peakmem_top_eigenvalues`` skips ResNet-18 on a CPU (its ``time_`` twin would repeat a
solve of a minute); this script is its CPU stand-in.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/resnet18_top5_memory.py --threads 1
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def _peak_rss_gib() -> float:
    """This process's peak resident set size (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _one(impl_name: str, threads: int) -> dict[str, object]:
    """Build the workload and ``impl_name``'s Hessian, solve top-5 once, report."""
    import numpy as np
    import torch

    from hessbench.bench.impls import hvp_fn
    from hessbench.bench.measure import _peer_values
    from hessbench.bench.peers import IMPLEMENTATIONS
    from hessbench.bench.timing import time_call
    from hessbench.bench.workloads import get_workload

    torch.set_num_threads(threads)
    impl = IMPLEMENTATIONS[impl_name]()
    w = get_workload("resnet18")
    h = impl.prepare(w)
    solve = impl.top_eigenvalues(h, 5)
    before = _peak_rss_gib()
    t0 = time.perf_counter()
    result = solve()
    seconds = time.perf_counter() - t0
    peak = _peak_rss_gib()
    products = None
    if impl_name == "hessbench":
        values, converged = result.values, result.converged
        products = result.matvecs * time_call(hvp_fn(h), repeats=3, warmup=0,
                                              device=h.device).median
    elif impl_name == "pyhessian":           # (eigenvalues, eigenvectors), no flag
        values, converged = result[0], None
    else:
        values, converged = _peer_values(result)
    top = sorted(np.asarray(values, dtype=float).ravel().tolist(), reverse=True)[:5]
    return {"impl": impl_name, "setup_gib": before, "peak_gib": peak,
            "seconds": seconds, "top5": top, "converged": converged, "products": products}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--one", help=argparse.SUPPRESS)   # the child process
    args = parser.parse_args()
    if args.one:
        print(json.dumps(_one(args.one, args.threads)))
        return
    from hessbench.bench.peers import IMPLEMENTATIONS

    print(f"{'implementation':14s} {'setup GiB':>9s} {'peak GiB':>9s} {'solve adds':>10s} "
          f"{'seconds':>8s} {'converged':>9s}  top-5 eigenvalues")
    for name, cls in IMPLEMENTATIONS.items():
        if not cls.available():
            print(f"{name:14s} not installed")
            continue
        child = subprocess.run([sys.executable, __file__, "--one", name,
                                "--threads", str(args.threads)],
                               capture_output=True, text=True)
        if child.returncode:
            print(f"{name:14s} failed: {child.stderr.strip().splitlines()[-1]}")
            continue
        r = json.loads(child.stdout.strip().splitlines()[-1])
        print(f"{name:14s} {r['setup_gib']:9.2f} {r['peak_gib']:9.2f} "
              f"{r['peak_gib'] - r['setup_gib']:10.2f} {r['seconds']:8.1f} "
              f"{'-' if r['converged'] is None else str(r['converged']):>9s}  "
              + ", ".join(f"{v:.4g}" for v in r["top5"]))
        if r["products"] is not None:
            print(f"{'':14s} of which products ~{r['products']:.1f} s (matvecs x the median "
                  f"of 3 timed products), the rest in the solver")


if __name__ == "__main__":
    main()
