"""One rank of the two-process gloo checks in tests/test_distributed.py.

Run as ``python tests/distributed_worker.py RANK WORLD STORE OUT``: joins the process
group through a file store, builds hessbench.distributed operators on this rank's shards,
and saves every result (dense matrices, algorithm outputs, error messages) to
``OUT/rank{RANK}.pt`` for the parent test to compare.
"""
from __future__ import annotations

import sys
from datetime import timedelta

import torch
from torch import nn

SAMPLES = 23


def make_model() -> nn.Module:
    """The test model (43 parameters), float64, the same on every rank."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).double()


def make_data() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return (torch.randn(SAMPLES, 4, generator=gen, dtype=torch.float64),
            torch.randint(0, 3, (SAMPLES,), generator=gen))


def shards(scenario: str) -> list:
    """Per rank: 'ragged' = [7, 5] batches on rank 0 and one batch of 11 on rank 1;
    'empty' = ragged [9, 7, 7] on rank 0 and an empty shard on rank 1."""
    x, y = make_data()

    def cut(*bounds):
        return [(x[a:b], y[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]

    if scenario == "ragged":
        return [cut(0, 7, 12), (x[12:], y[12:])]
    return [cut(0, 9, 16, 23), []]


def loss_for(scenario: str) -> nn.Module:
    return nn.CrossEntropyLoss(reduction="sum" if scenario == "empty" else "mean")


def operators(module, scenario: str, data) -> dict:
    """The four operators of ``module`` (hessbench or hessbench.distributed)."""
    model, loss = make_model(), loss_for(scenario)
    return {"hessian": module.hessian(model, loss, data),
            "ggn": module.ggn(model, loss, data),
            "fisher": module.fisher(model, loss, data),
            "gradient_covariance": module.gradient_covariance(model, loss, data, batch_size=3)}


def _error(fn) -> str | None:
    try:
        fn()
    except Exception as err:   # recorded for the parent to check
        return f"{type(err).__name__}: {err}"
    return None


def run(rank: int, world: int, store: str, out: str) -> None:
    import torch.distributed as dist

    import hessbench as hb
    from hessbench import distributed as hd

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank,
                            world_size=world, timeout=timedelta(seconds=30))
    res: dict = {}
    v = torch.linspace(-1, 1, 43, dtype=torch.float64)
    for scenario in ("ragged", "empty"):
        ops = operators(hd, scenario, shards(scenario)[rank])
        for name, op in ops.items():
            res[f"{scenario}/{name}/dense"] = op.dense()
            res[f"{scenario}/{name}/matvec"] = op.matvec(v)
            res[f"{scenario}/{name}/scipy"] = torch.from_numpy(op.to_scipy() @ v.numpy())
        res[f"{scenario}/num_params"] = ops["hessian"].num_params
        res[f"{scenario}/mean_gradient"] = ops["gradient_covariance"].mean_gradient
    H = hd.hessian(make_model(), loss_for("ragged"), shards("ragged")[rank])
    r = hb.eigsh(H, k=3, tol=1e-8, seed=0)
    res["eigsh"] = (r.values, r.residuals, r.matvecs, r.vectors)
    t = hb.trace(H, method="hutch++", num_matvecs=20, seed=1)
    res["trace"] = (t.value, t.stderr, t.matvecs)
    d = hb.spectral_density(H, num_probes=2, lanczos_steps=10, seed=2)
    res["density"] = (d.nodes, d.weights)
    res["spectrum"] = hb.spectrum(H)

    other = make_model()
    if rank == 1:
        with torch.no_grad():
            other[2].bias[0] += 1e-3
    res["mismatch"] = _error(lambda: hd.hessian(other, loss_for("ragged"),
                                                shards("ragged")[rank]))
    x, y = make_data()
    bad = [(x[:5], y[:5]), (x[5:9] * float("nan"), y[5:9])] if rank == 0 else (x[9:], y[9:])
    op = hd.hessian(make_model(), loss_for("ragged"), bad)
    res["product_failure"] = _error(lambda: op.matvec(v))
    res["after_failure"] = hd.ggn(make_model(), loss_for("ragged"),
                                  shards("ragged")[rank]).matvec(v)
    torch.save(res, f"{out}/rank{rank}.pt")
    dist.destroy_process_group()


if __name__ == "__main__":
    run(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4])
