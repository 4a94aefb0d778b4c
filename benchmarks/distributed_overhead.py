"""Distributed HVP overhead: seconds per Hessian-vector product of hessbench.distributed on
W gloo ranks (each holding 1/W of the data) against hessbench.hessian on all of it.

    python benchmarks/distributed_overhead.py                         # single process
    torchrun --nproc-per-node 2 benchmarks/distributed_overhead.py    # 2 ranks

Model: the 64-32-10 tanh MLP (2410 parameters, float64) on all 1797 sklearn digits in
batches of 256. Prints seconds per matvec (median of 5 runs of 20) and the bytes
all-reduced per matvec (n * 8).
"""
from __future__ import annotations

import os
import statistics
import time

import torch
import torch.distributed as dist

import hessbench as hb
from hessbench import distributed as hd
from hessbench.data import batches, digits
from hessbench.models import mlp


def main() -> None:
    torch.set_num_threads(1)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    x, y = digits(dtype=torch.float64)
    model = mlp(64, [32], 10, activation="tanh", seed=0, dtype=torch.float64)
    loss = torch.nn.CrossEntropyLoss()
    if "RANK" in os.environ:
        dist.init_process_group("gloo")
        rank = dist.get_rank()
        op = hd.hessian(model, loss, batches(x[rank::world], y[rank::world], 256))
    else:
        rank, op = 0, hb.hessian(model, loss, batches(x, y, 256))
    v = torch.randn(op.num_params, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    op.matvec(v)
    runs = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(20):
            op.matvec(v)
        runs.append((time.perf_counter() - start) / 20)
    if rank == 0:
        print(f"world={world} n={op.num_params} seconds_per_matvec={statistics.median(runs):.5f} "
              f"allreduce_bytes_per_matvec={op.num_params * 8 if world > 1 else 0}")
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
