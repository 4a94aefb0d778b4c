"""Top Hessian eigenvalues and trace of an MLP on sklearn digits, the data sharded over ranks.

Run with ``torchrun --nproc-per-node 2 -m hessbench.examples.distributed_spectrum``
(gloo on CPU; nccl, one GPU per rank, when CUDA is available), or as a plain
``python -m hessbench.examples.distributed_spectrum`` (one rank). Rank r takes samples
r, r + W, r + 2W, ... (unequal shards when W does not divide N) in ragged batches; every
rank computes the same Lanczos and Hutch++ recurrences and only the Hessian-vector
products communicate, so all ranks print-identical results (checked below).
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch
import torch.distributed as dist

import hessbench as hb
from hessbench import distributed as hd
from hessbench.data import batches, digits
from hessbench.models import mlp


def _init() -> torch.device:
    """Join the torchrun group (or make a one-rank group); the device of this rank."""
    single = {} if "RANK" in os.environ else dict(
        init_method=f"file://{tempfile.mkdtemp()}/store", rank=0, world_size=1)
    if torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", **single)
        return device
    dist.init_process_group("gloo", **single)
    return torch.device("cpu")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=1797, help="digits samples in all")
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("-k", type=int, default=5, help="number of top eigenvalues")
    args = ap.parse_args(argv)
    device = _init()
    rank, world = dist.get_rank(), dist.get_world_size()
    x, y = digits(args.samples, dtype=torch.float64)
    shard = batches(x[rank::world].to(device), y[rank::world].to(device), args.batch_size)
    model = mlp(64, [args.hidden], 10, activation="tanh", seed=0, dtype=torch.float64,
                device=device)
    start = time.perf_counter()
    op = hd.hessian(model, torch.nn.CrossEntropyLoss(), shard)
    top = hb.eigsh(op, k=args.k, tol=1e-6, seed=0)
    tr = hb.trace(op, method="hutch++", num_matvecs=100, seed=0)
    seconds = time.perf_counter() - start
    results = [None] * world
    dist.all_gather_object(results, (top.values.tolist(), tr.value))
    if rank == 0:
        sizes = [len(range(r, args.samples, world)) for r in range(world)]
        print(f"{world} rank(s), shards of {sizes} samples, n = {op.num_params} parameters, "
              f"{device}")
        print(f"top-{args.k} eigenvalues: {', '.join(f'{v:.6g}' for v in top.values)} "
              f"(converged={top.converged}, {top.matvecs} matvecs)")
        print(f"trace (hutch++): {tr.value:.6g} +- {tr.stderr:.2g} ({tr.matvecs} matvecs)")
        print(f"communication: {op.num_params * op.dtype.itemsize / 1024:.1f} KiB all-reduced "
              f"per matvec; {seconds:.2f} s in all")
        print(f"identical on every rank: {all(r == results[0] for r in results)}")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
