"""Data-parallel curvature operators over a ``torch.distributed`` process group.

Inside an initialised default process group (``torch.distributed.init_process_group``,
gloo on CPU, nccl on GPU; e.g. launched with ``torchrun``) each rank r holds a shard
D_r of N_r samples (possibly none) and builds the operator with the same call as
:func:`hessbench.hessian` & co. With A_r the rank's single-process operator (the mean
over its own samples), every product is

    A V = sum_r N_r A_r V / N,    N = sum_r N_r,

so shards of any sizes give exactly the operator of the whole data set's mean loss, the
same semantics as the single-process operators (ragged batches and sum-reduced losses
included). The gradient covariance is centred at the mean gradient over all ranks'
samples, g = sum_r N_r g_r / N: Sigma = [(1/N) sum_i g_i g_i^T - g g^T] / B.

Cost model: each block of m vectors costs one local product on the rank's shard and ONE
all-reduce of n x m numbers (n = ``num_params``), plus ``world_size`` status flags, so one
matvec moves n numbers per rank (ring all-reduce: about 2 n (W-1)/W elements sent by
each rank). Construction costs one all-gather of a few integers (sample counts and a
checksum of the parameters and buffers) and, for ``gradient_covariance``, one all-reduce
of the mean gradient; it also iterates once over the shard's batches to count samples.

Limits: vectors are replicated on every rank (O(n m) memory per rank; the parameters
are not sharded), and the algorithms in :mod:`hessbench.linalg` run unchanged and
redundantly on every rank; since only the product communicates and every rank receives
the same reduced bits, a fixed ``seed`` gives bit-identical results on every rank (same
hardware and thread counts). Every rank must make the same calls in the same order
(collectives). A failure in one rank's product (e.g. NaN in a batch) is raised on every
rank, so no rank waits forever; memory guards (``dense``, ``eigsh``) read each rank's
own free memory, so pass ``max_memory_bytes`` where ranks differ.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Literal

import torch
import torch.distributed as dist
from torch import nn

from hessbench import operators as ops
from hessbench.problem import LossFn, ModePolicy, Problem, _normalise_data, trainable_parameters
from hessbench.validation import check_device, check_int

__all__ = ["DistributedOperator", "hessian", "ggn", "fisher", "gradient_covariance"]

_FLOAT_DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]


def _require_group() -> tuple[int, int]:
    """(rank, world size) of the default process group; ``RuntimeError`` when there is none."""
    if not dist.is_available() or not dist.is_initialized():
        raise RuntimeError(
            "hessbench.distributed needs an initialised default process group: call "
            "torch.distributed.init_process_group('gloo') (CPU) or ('nccl') (GPU) first, "
            "e.g. in a script launched with `torchrun --nproc-per-node 2 script.py`; for a "
            "single process use hessbench.hessian & co.")
    return dist.get_rank(), dist.get_world_size()


def _collective(t: torch.Tensor, op: Callable[[torch.Tensor], object]) -> torch.Tensor:
    """Run the in-place collective ``op`` on ``t``, through the CPU for gloo with CUDA."""
    if dist.get_backend() == "nccl" or t.device.type == "cpu":
        op(t)
        return t
    host = t.cpu()
    op(host)
    return host.to(t.device)


def _count_samples(data) -> int:
    """The number of samples in a shard (one batch or a re-iterable of batches)."""
    total = 0
    for batch in _normalise_data(data):
        if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
            raise TypeError(f"each batch must be an (inputs, targets) pair, got "
                            f"{type(batch).__name__}")
        total += len(batch[0])
    return total


def _digest(tensors: dict[str, torch.Tensor]) -> int:
    """A 63-bit checksum of names, shapes, dtypes and exact values (sha256)."""
    h = hashlib.sha256()
    for name, t in tensors.items():
        t = t.detach().to("cpu").contiguous().reshape(-1)
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
        h.update(t.view(torch.uint8).numpy().tobytes())
    return int.from_bytes(h.digest()[:8], "little") >> 1


def _fingerprint(model: nn.Module, params: Sequence[str] | None) -> tuple[int, int]:
    """Checksums of the trainable parameters and of everything else (frozen parameters,
    buffers), which the operator also depends on."""
    named = trainable_parameters(model, params)
    rest = {k: t for k, t in [*model.named_parameters(), *model.named_buffers()]
            if k not in named}
    return _digest(named), _digest(rest)


def _agree(info: list[int], rank: int, world: int, err: BaseException | None) -> torch.Tensor:
    """All-gather each rank's ``[failed, *info]`` and raise on every rank when one failed
    (the failed rank re-raises its own error). Returns the (world, 1 + len(info)) table."""
    nccl = dist.get_backend() == "nccl"
    comm = torch.device("cuda", torch.cuda.current_device()) if nccl else torch.device("cpu")
    mine = torch.tensor([int(err is not None), *info], dtype=torch.int64, device=comm)
    table = [torch.empty_like(mine) for _ in range(world)]
    dist.all_gather(table, mine)
    table = torch.stack(table).cpu()
    failed = [r for r in range(world) if table[r, 0]]
    if err is not None:
        raise err
    if failed:
        raise RuntimeError(f"building the distributed operator failed on rank(s) {failed}; "
                           f"their error is raised (and printed) there")
    return table


def _check_replicas(table: torch.Tensor) -> None:
    """Raise ``ValueError`` naming the ranks whose columns 2.. (num_params, dtype, the
    parameter and buffer checksums) differ from rank 0's."""
    what = ["the number of parameters", "the dtype", "the parameter values",
            "the buffers or frozen parameters"]
    for col, name in enumerate(what, start=2):
        bad = [r for r in range(len(table)) if table[r, col] != table[0, col]]
        if bad:
            raise ValueError(
                f"hessbench.distributed: rank(s) {bad} hold {name} different from rank 0's "
                f"(checksums of names, shapes and exact values); every rank must hold the same "
                f"model (e.g. broadcast the state_dict from rank 0, or seed the initialisation "
                f"identically) and pass the same params=/dtype=")


class DistributedOperator(ops.CurvatureOperator):
    """A :class:`~hessbench.operators.CurvatureOperator` whose product all-reduces the
    sample-weighted products of each rank's operator: A V = sum_r N_r A_r V / N.

    Attributes: those of :class:`~hessbench.operators.CurvatureOperator`, and ``local``
    (this rank's operator, None for an empty shard), ``local_samples`` (N_r),
    ``num_samples`` (N), ``rank``, ``world_size``, ``mean_gradient`` (the full-data
    gradient for ``gradient_covariance``, None otherwise).
    """

    def __init__(self, local: ops.CurvatureOperator | None, *, num_params: int,
                 dtype: torch.dtype, device: torch.device, local_samples: int,
                 num_samples: int, name: str, chunk_size: int | None,
                 mean_gradient: torch.Tensor | None = None) -> None:
        self.local = local
        self.local_samples, self.num_samples = local_samples, num_samples
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        self.mean_gradient = mean_gradient
        super().__init__(self._product, num_params, dtype, device, name=f"distributed {name}",
                         chunk_size=chunk_size)

    def _product(self, V: torch.Tensor) -> torch.Tensor:
        local = None if self.local is None else (lambda: self.local.matmat(V))
        return _reduce_mean(local, self.local_samples, self.num_samples, V.shape, self.dtype,
                            self.device, self.name)


def _reduce_mean(local: Callable[[], torch.Tensor] | None, local_samples: int,
                 num_samples: int, shape: Sequence[int], dtype: torch.dtype,
                 device: torch.device, what: str) -> torch.Tensor:
    """sum_r N_r local_r() / N over the ranks (``local`` None: an empty shard, adding 0).

    One all-reduce of prod(shape) + world_size numbers; the last world_size flag the ranks
    whose ``local()`` raised, so a failure is raised on every rank instead of a hang."""
    rank, world = dist.get_rank(), dist.get_world_size()
    numel = int(torch.Size(shape).numel())
    buf = torch.zeros(numel + world, dtype=dtype, device=device)
    err: Exception | None = None
    if local is not None:
        try:
            buf[:numel] = local().reshape(-1) * local_samples
        except Exception as exc:   # reported to the other ranks, then re-raised here
            err = exc
            buf[:numel] = 0
    buf[numel + rank] = float(err is not None)
    buf = _collective(buf, dist.all_reduce)
    if err is not None:
        raise err
    failed = torch.nonzero(buf[numel:]).flatten().tolist()
    if failed:
        raise RuntimeError(f"{what}: the product failed on rank(s) {failed}; their error is "
                           f"raised (and printed) there")
    return (buf[:numel] / num_samples).reshape(tuple(shape))


def _build(name: str, make_local: Callable[[], object], model: nn.Module, data,
           params: Sequence[str] | None, dtype: torch.dtype | None,
           device: torch.device | str | None
           ) -> tuple[object | None, dict]:
    """Count the shard, build this rank's piece with ``make_local`` (skipped for an empty
    shard), agree on counts and checksums across ranks; return the piece and the
    keyword arguments of :class:`DistributedOperator` it implies."""
    rank, world = _require_group()
    piece, err, info, dev, dt = None, None, [0, 0, 0, 0, 0], None, None
    try:
        first = next(iter(trainable_parameters(model, params).values()))
        dev = check_device(device, first.device)
        if dist.get_backend() == "nccl" and dev.type != "cuda":
            raise ValueError(f"the process group uses nccl, which needs CUDA tensors, but the "
                             f"operator is on {dev}; pass device='cuda' (or move the model), "
                             f"or use the gloo backend on CPU")
        dt = dtype if dtype is not None else first.dtype
        n_local = _count_samples(data)
        if n_local:
            piece = make_local()
        num_params = sum(p.numel() for p in trainable_parameters(model, params).values())
        code = _FLOAT_DTYPES.index(dt) if dt in _FLOAT_DTYPES else -1
        info = [n_local, num_params, code, *_fingerprint(model, params)]
    except Exception as exc:   # reported to the other ranks, then re-raised here
        err = exc
    table = _agree(info, rank, world, err)
    _check_replicas(table)
    total = int(table[:, 1].sum())
    if total == 0:
        raise ValueError(f"{name}: every rank's shard is empty; give at least one rank data")
    return piece, dict(num_params=info[1], dtype=dt, device=dev, local_samples=info[0],
                       num_samples=total)


def _wrap(name: str, build: Callable[..., ops.CurvatureOperator], model: nn.Module,
          loss_fn: LossFn, data, *, dtype, device, params, chunk_size, **kw
          ) -> DistributedOperator:
    """The distributed twin of ``build`` (hb.hessian, ggn, fisher): local pieces built by
    ``build`` itself, with one vmapped block per all-reduce."""
    def make_local() -> ops.CurvatureOperator:
        return build(model, loss_fn, data, dtype=dtype, device=device, params=params,
                     chunk_size=None, **kw)

    local, spec = _build(name, make_local, model, data, params, dtype, device)
    return DistributedOperator(local, name=name, chunk_size=chunk_size, **spec)


def hessian(model: nn.Module, loss_fn: LossFn, data, *, dtype: torch.dtype | None = None,
            device: torch.device | str | None = None, params: Sequence[str] | None = None,
            mode: ModePolicy = "error", chunk_size: int | None = 32,
            hvp: Literal["reverse", "forward"] = "reverse",
            keep_graph: bool | None = None) -> DistributedOperator:
    """H = (1/N) sum_r N_r H_r over all ranks' shards; options as :func:`hessbench.hessian`
    (``keep_graph`` applies to each rank's own shard)."""
    return _wrap("hessian", ops.hessian, model, loss_fn, data, dtype=dtype, device=device,
                 params=params, chunk_size=chunk_size, mode=mode, hvp=hvp,
                 keep_graph=keep_graph)


def ggn(model: nn.Module, loss_fn: LossFn, data, *, dtype: torch.dtype | None = None,
        device: torch.device | str | None = None, params: Sequence[str] | None = None,
        mode: ModePolicy = "error", chunk_size: int | None = 32) -> DistributedOperator:
    """Gauss-Newton G = (1/N) sum_r N_r G_r over all ranks; options as :func:`hessbench.ggn`."""
    return _wrap("ggn", ops.ggn, model, loss_fn, data, dtype=dtype, device=device,
                 params=params, chunk_size=chunk_size, mode=mode)


def fisher(model: nn.Module, loss_fn: LossFn, data, *, dtype: torch.dtype | None = None,
           device: torch.device | str | None = None, params: Sequence[str] | None = None,
           mode: ModePolicy = "error", chunk_size: int | None = None) -> DistributedOperator:
    """Empirical Fisher F = (1/N) sum_i g_i g_i^T over all ranks' samples; options as
    :func:`hessbench.fisher`."""
    return _wrap("fisher", ops.fisher, model, loss_fn, data, dtype=dtype, device=device,
                 params=params, chunk_size=chunk_size, mode=mode)


def gradient_covariance(model: nn.Module, loss_fn: LossFn, data, *, batch_size: int = 1,
                        dtype: torch.dtype | None = None, device: torch.device | str | None = None,
                        params: Sequence[str] | None = None, mode: ModePolicy = "error",
                        chunk_size: int | None = None) -> DistributedOperator:
    """Sigma = [(1/N) sum_i g_i g_i^T - g g^T] / B, centred at the mean gradient g over all
    ranks' samples (one all-reduce at construction, kept as ``op.mean_gradient``); options
    as :func:`hessbench.gradient_covariance`."""
    batch_size = check_int("batch_size", batch_size, minimum=1)

    def make_problem() -> Problem:
        prob = Problem(model, loss_fn, data, dtype=dtype, device=device, params=params,
                       mode=mode)
        prob.require_per_sample("gradient_covariance")
        return prob

    prob, spec = _build("gradient_covariance", make_problem, model, data, params, dtype, device)
    g = _reduce_mean(None if prob is None else (lambda: ops.dataset_mean_gradient(prob)),
                     spec["local_samples"], spec["num_samples"], (spec["num_params"],),
                     spec["dtype"], spec["device"], "distributed gradient_covariance")
    local = None if prob is None else ops.OuterProductOperator(
        prob, name="gradient_covariance", centre=True, scale=1.0 / batch_size,
        chunk_size=None, mean_gradient=g)
    return DistributedOperator(local, name="gradient_covariance", chunk_size=chunk_size,
                               mean_gradient=g, **spec)
