"""The (model, loss, data) problem that curvature operators and training routines act on.

A model f(x; theta) with trainable parameters theta, a loss ``loss_fn(outputs, targets)``
and data given as one ``(inputs, targets)`` batch or a re-iterable of batches (a list, a
DataLoader) define the dataset's *mean* loss

    L(theta) = (1/N) sum_i l_i(theta) = sum_b n_b L_b(theta) / sum_b n_b,

l_i = ``loss_fn`` on the one-sample batch i, L_b the mean loss of batch b and n_b its
number of samples, so ragged batches weigh what their samples weigh. ``loss_fn`` may
reduce a batch by its mean or by its sum: the reduction is read from an ``nn.Module``
loss's ``reduction`` and otherwise detected at construction (the first batch repeated
twice gives the same loss for a mean, twice the loss for a sum); a sum is divided by
n_b, so every operator is that of L whatever the batching, and a loss that is neither
is refused. The loss and the batches must be deterministic, so that an operator is one
matrix: a forward pass that differs between two calls (functional dropout) is refused,
and with ``mode="train"`` BatchNorm the batches must be fixed (a list, or a DataLoader
that does not shuffle). theta in R^n is the concatenation of the trainable
parameters in ``model.named_parameters()`` order, each flattened row-major (the order
:func:`torch.nn.utils.parameters_to_vector` uses).

:class:`Problem` holds a snapshot of theta for ``torch.func`` (flattening, functional
calls, batch iteration, the train/eval mode policy, per-sample gradients and output
Jacobians); :func:`trainable_parameters` gives the live parameters of a model, for
routines that update the model in place.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Literal

import torch
from torch import nn
from torch.func import functional_call, grad, jacrev, vmap
from torch.utils.data import BatchSampler, DataLoader, SequentialSampler

from hessbench.validation import check_device, check_finite_batch, check_names

__all__ = ["LossFn", "Batch", "ModePolicy", "Problem", "trainable_parameters", "flatten",
           "weighted_average"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``loss_fn(outputs, targets)``: the mean (or sum) of the per-sample losses of the batch,
a scalar tensor."""
Batch = tuple[torch.Tensor, torch.Tensor]
"""One ``(inputs, targets)`` batch."""
ModePolicy = Literal["error", "eval", "train"]
"""What to do with BatchNorm/Dropout in train mode: refuse, evaluate in eval mode, or use
batch statistics (BatchNorm only; running statistics untouched)."""

_BATCHNORM = nn.modules.batchnorm._BatchNorm
_STOCHASTIC = (_BATCHNORM, nn.modules.dropout._DropoutNd, nn.Dropout)


def trainable_parameters(model: nn.Module,
                         names: Sequence[str] | None = None) -> dict[str, nn.Parameter]:
    """The live parameters with ``requires_grad``, by name, in ``named_parameters()`` order.

    ``names`` selects a subset (in the order given). Raises ``TypeError`` for a non-module
    and ``ValueError`` for unknown or frozen names, or when nothing is left.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    named = {k: p for k, p in model.named_parameters() if p.requires_grad}
    names = check_names(names)
    if names is not None:
        unknown = sorted(set(names) - set(named))
        if unknown:
            raise ValueError(f"unknown or frozen parameter names {unknown}; "
                             f"trainable ones are {sorted(named)}")
        named = {k: named[k] for k in names}
    if not named:
        why = ("every parameter has requires_grad=False; unfreeze some" if names is None
               else "params selects none; pass params=[...] names")
        raise ValueError(f"model has no trainable parameters ({why})")
    return named


def flatten(tensors: Iterable[torch.Tensor]) -> torch.Tensor:
    """One flat vector: the tensors flattened row-major and concatenated."""
    return torch.cat([t.reshape(-1) for t in tensors])


class Problem:
    """(model, loss_fn, data) prepared for ``torch.func`` at a snapshot of the parameters.

    The trainable parameters (all, or the ``params`` names) are copied, detached, to
    ``device``/``dtype`` (default: those of the first one); frozen parameters and buffers
    ride along as constants, cast the same way; training the model afterwards does not
    change the problem. Construction checks the mode policy and evaluates the loss on
    the first batch: it must be a finite scalar, the parameters finite, the forward
    pass deterministic, and the loss a mean or a sum over the batch (``reduction``).
    Every batch's floating inputs and targets are checked for NaN/Inf as it streams.

    Attributes: ``model``, ``loss_fn``, ``mode``, ``data`` (a re-iterable of batches),
    ``device``, ``dtype``, ``names``, ``shapes``, ``sizes``, ``num_params`` (= n),
    ``params`` (the snapshot, name -> tensor) and ``const`` (the constants).
    """

    def __init__(self, model: nn.Module, loss_fn: LossFn, data, *,
                 dtype: torch.dtype | None = None, device: torch.device | str | None = None,
                 params: Sequence[str] | None = None, mode: ModePolicy = "error") -> None:
        named = trainable_parameters(model, params)
        first = next(iter(named.values()))
        self.device = check_device(device, first.device)
        self.dtype = dtype if dtype is not None else first.dtype
        if not isinstance(self.dtype, torch.dtype) or not self.dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating-point torch.dtype (e.g. dtype=torch."
                            f"float64), got {self.dtype!r}")
        self.model, self.loss_fn, self.mode = model, loss_fn, mode
        self.names = list(named)
        self.shapes = [p.shape for p in named.values()]
        self.sizes = [p.numel() for p in named.values()]
        self.num_params = sum(self.sizes)
        self.params = {k: self._cast(p.detach()).clone() for k, p in named.items()}
        self._leaves: dict[str, torch.Tensor] | None = None
        self._copy: tuple | bool | None = None   # leaf_outputs' model copy, False if none
        # functional_call re-ties shared tensors on every call unless told there are none
        self._tied = next(_tied_names(model), None) is not None
        self.const = {k: self._cast(t.detach()).clone()
                      for k, t in [*model.named_parameters(), *model.named_buffers()]
                      if k not in named}
        self._check_mode()
        self.batch_statistics = mode == "train" and any(
            isinstance(m, _BATCHNORM) and m.training for m in model.modules())
        """Whether BatchNorm normalises by batch statistics (mode='train')."""
        self.data = _normalise_data(data)
        _check_fixed_batches(self.data, self.batch_statistics)
        self.reduction = "mean"
        """How ``loss_fn`` reduces a batch, 'mean' or 'sum' (detected at construction)."""
        self._check_first_batch()

    # -- data
    def _cast(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` on the problem's device; floating-point tensors in its dtype."""
        return t.to(self.device, self.dtype if t.is_floating_point() else None)

    def _cast_batch(self, x: torch.Tensor, y: torch.Tensor) -> Batch:
        if len(x) != len(y):
            raise ValueError(f"inputs and targets differ in length: {len(x)} vs {len(y)}")
        return self._cast(x), self._cast(y)

    def batches(self) -> Iterator[Batch]:
        """Yield the non-empty (inputs, targets) batches on the problem's device, floating
        tensors in its dtype; ``ValueError`` when there is none, or when a batch holds
        NaN/Inf (naming its index)."""
        for _, x, y in self.indexed_batches():
            yield x, y

    def indexed_batches(self) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
        """:meth:`batches` with each batch's 0-based index in ``data``."""
        empty = True
        for i, batch in enumerate(self.data):
            if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
                raise TypeError("each batch must be an (inputs, targets) pair, got "
                                f"{type(batch).__name__}")
            if len(batch[0]) == 0:
                continue
            empty = False
            x, y = self._cast_batch(*batch)
            if not (_surely_finite(x) and _surely_finite(y)):
                check_finite_batch(x, y, i)
            yield i, x, y
        if empty:
            raise ValueError("data is empty: no batch with at least one sample")

    @property
    def single_batch(self) -> bool:
        """Whether the data is one in-memory batch (a tuple, or a one-element list)."""
        return isinstance(self.data, (list, tuple)) and len(self.data) == 1

    def _check_first_batch(self) -> None:
        for k, p in self.params.items():
            if not torch.isfinite(p).all():
                raise ValueError(f"parameter {k!r} contains NaN or Inf")
        x, y = next(iter(self.batches()))
        with self.mode_context(), torch.no_grad():
            out = self.outputs(self.params, x)
            again = self.outputs(self.params, x)
            loss = self.loss_fn(out, y)
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
            raise ValueError(f"loss_fn must return a scalar (the mean loss over the batch), got "
                             f"{shape}; use reduction='mean'")
        if not torch.isfinite(loss):
            raise ValueError(f"loss is {loss.item()} on the first batch; check the inputs and "
                             f"parameters for NaN/Inf")
        if isinstance(out, torch.Tensor) and isinstance(again, torch.Tensor):
            tol = 64 * torch.finfo(out.dtype).eps if out.is_floating_point() else 0.0
            if not torch.allclose(out, again, rtol=tol, atol=tol * float(out.abs().max()),
                                  equal_nan=True):
                raise ValueError(
                    "the model's forward pass is random: two calls on the first batch differ "
                    "(functional dropout such as F.dropout(x, training=True), or other random "
                    "ops), so the curvature is not one matrix; make the forward deterministic "
                    "(e.g. F.dropout(x, training=self.training) with model.eval())")
            self.reduction = _detect_reduction(self.loss_fn, out, y, loss)

    def batch_loss(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The *mean* per-sample loss of a batch: ``loss_fn``, divided by the batch size
        when it sums (``reduction == 'sum'``)."""
        loss = self.loss_fn(outputs, y)
        return loss / len(y) if self.reduction == "sum" else loss

    def require_per_sample(self, what: str) -> None:
        """Refuse per-sample curvature where it is undefined (train-mode BatchNorm)."""
        if self.batch_statistics:
            raise ValueError(
                f"{what} needs per-sample gradients, but with mode='train' BatchNorm "
                f"normalises by batch statistics, which a single sample does not have: "
                f"per-sample curvature is undefined. Pass mode='eval' (running statistics) "
                f"or call model.eval()")

    # -- train / eval policy
    def _check_mode(self) -> None:
        if self.mode not in ("error", "eval", "train"):
            raise ValueError(f"mode must be 'error', 'eval' or 'train', got {self.mode!r}")
        active = [type(m).__name__ for m in self.model.modules()
                  if isinstance(m, _STOCHASTIC) and m.training]
        if not active:
            return
        if self.mode == "error":
            raise ValueError(
                f"model is in train mode with {sorted(set(active))}: its loss is random (dropout) "
                f"or batch-dependent (BatchNorm). Call model.eval() first, or pass mode='eval' "
                f"(evaluated in eval mode, the model's mode restored after each product) or "
                f"mode='train' (BatchNorm with batch statistics, running stats untouched)")
        if self.mode == "train" and any("Dropout" in a for a in active):
            raise ValueError("mode='train' with active Dropout makes the Hessian random; "
                             "use mode='eval' or model.eval()")

    @contextmanager
    def mode_context(self) -> Iterator[None]:
        """mode='eval': run in eval mode; mode='train': BatchNorm uses batch statistics
        without updating running stats (``track_running_stats`` off). Each module's
        flags are restored afterwards."""
        if self.mode == "error":
            yield
            return
        flags = [(m, m.training, getattr(m, "track_running_stats", None))
                 for m in self.model.modules()]
        if self.mode == "eval":
            self.model.eval()
        else:
            for m in self.model.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.track_running_stats = False
        try:
            yield
        finally:
            for m, training, tracking in flags:
                m.train(training)
                if tracking is not None:
                    m.track_running_stats = tracking

    # -- flattening
    def unflatten(self, v: torch.Tensor) -> dict[str, torch.Tensor]:
        """Split a flat (n,) vector, or an (n, m) block (columns -> leading dim), into a
        name -> tensor dict shaped like the parameters."""
        parts = torch.split(v, self.sizes, dim=0)
        if v.ndim == 1:
            return {k: t.view(s) for k, t, s in zip(self.names, parts, self.shapes)}
        m = v.shape[1]
        return {k: t.T.reshape(m, *s) for k, t, s in zip(self.names, parts, self.shapes)}

    def flatten(self, tree: dict[str, torch.Tensor], batched: bool = False) -> torch.Tensor:
        """Inverse of :meth:`unflatten`: (n,), or (n, m) for a tree with a leading dim m."""
        if batched:
            return torch.cat([tree[k].reshape(tree[k].shape[0], -1) for k in self.names], 1).T
        return flatten(tree[k] for k in self.names)

    def flat_params(self) -> torch.Tensor:
        """The snapshot theta as one (n,) vector."""
        return self.flatten(self.params)

    # -- functional pieces
    def outputs(self, p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """f(x; p), the constants filled in."""
        return functional_call(self.model, {**p, **self.const}, (x,), tie_weights=self._tied)

    def loss(self, p: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The mean loss of the batch (x, y) at parameters p (see :meth:`batch_loss`)."""
        return self.batch_loss(self.outputs(p, x), y)

    @property
    def leaves(self) -> dict[str, torch.Tensor]:
        """The snapshot as autograd leaves (``requires_grad``, sharing storage with
        :attr:`params`), for products by plain ``torch.autograd``."""
        if self._leaves is None:
            self._leaves = {k: p.detach().requires_grad_(True) for k, p in self.params.items()}
        return self._leaves

    def leaf_outputs(self, x: torch.Tensor) -> torch.Tensor:
        """f(x; :attr:`leaves`) by a copy of the model that holds the leaves and constants
        as its own tensors (built once), so a call needs no ``functional_call`` swap of
        every tensor in and out (about 50 us of a 0.7 ms streamed HVP batch, MLP 4270
        params, batch 100). The copy follows the model's train/eval and
        ``track_running_stats`` flags, so :meth:`mode_context` applies to it; a model that
        cannot be deep-copied is called through :meth:`outputs`."""
        if self._copy is None:
            self._copy = _leaf_copy(self.model, {**self.leaves, **self.const})
        if not self._copy:
            return self.outputs(self.leaves, x)
        copy_model, pairs = self._copy
        for m, c in pairs:   # set only what differs: Module.__setattr__ costs ~4 us a call
            if c.training is not m.training:
                c.training = m.training
            if isinstance(m, _BATCHNORM) and c.track_running_stats is not m.track_running_stats:
                c.track_running_stats = m.track_running_stats
        return copy_model(x)

    def gradient_graph(self, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor | None]:
        """g_b = grad_theta L_b at the snapshot, one tensor per parameter, with its graph
        (``create_graph=True``) so that it can be differentiated again: by plain
        ``torch.autograd`` on :attr:`leaves`, which costs about half of ``torch.func``'s
        ``vjp(grad)`` per batch of a small model (0.70 vs 1.24 ms, MLP 4270 params, batch
        100, 1 thread). None for a parameter the loss does not depend on. Call it in the
        mode policy's context."""
        with torch.enable_grad():
            loss = self.batch_loss(self.leaf_outputs(x), y)
            return list(torch.autograd.grad(loss, list(self.leaves.values()),
                                            create_graph=True, allow_unused=True))

    def dataset_average(self, per_batch: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
                        ) -> torch.Tensor:
        """sum_b n_b per_batch(x_b, y_b) / sum_b n_b over the batches, streamed, in the
        mode policy's context; ``ValueError`` naming the batch where a value is NaN/Inf."""
        with self.mode_context():
            return weighted_average((i, len(x), per_batch(x, y))
                                    for i, x, y in self.indexed_batches())

    def batch_states(self, build: Callable[[torch.Tensor, torch.Tensor], object]
                     ) -> list[tuple[int, int, object]]:
        """[(b, n_b, build(x_b, y_b))] for every batch, in the mode policy's context: what an
        operator keeps between products (e.g. each batch's gradient graph) so that a
        product needs no forward pass; average its products with :func:`weighted_average`."""
        with self.mode_context():
            return [(i, len(x), build(x, y)) for i, x, y in self.indexed_batches()]

    def per_sample_gradients(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(b, n): row i is g_i = grad_theta l(f(x_i; theta), y_i) at the snapshot, by
        ``vmap(grad)`` in the mode policy's context. The model must not mix samples (no
        BatchNorm with batch statistics)."""
        self.require_per_sample("per_sample_gradients")
        x, y = self._cast_batch(x, y)

        def one(p, xi, yi):
            return self.loss(p, xi.unsqueeze(0), yi.unsqueeze(0))

        with self.mode_context():
            g = vmap(grad(one), in_dims=(None, 0, 0))(self.params, x, y)
        return self.flatten(g, batched=True).T

    def per_sample_jacobians(self, x: torch.Tensor) -> torch.Tensor:
        """(b, out, n): J_i = d f(x_i; theta) / d theta at the snapshot, one sample's
        output flattened to ``out`` entries (1 for a scalar output), by ``vmap(jacrev)``
        in the mode policy's context.

        The Gauss-Newton matrix of a loss with output Hessians Q_i is then
        (1/N) sum_i J_i^T Q_i J_i.
        """
        self.require_per_sample("per_sample_jacobians")
        x = self._cast(x)

        def one(p, xi):
            return self.outputs(p, xi.unsqueeze(0)).reshape(-1)

        with self.mode_context():
            jac = vmap(jacrev(one), in_dims=(None, 0))(self.params, x)
        return torch.cat([jac[k].reshape(len(x), jac[k].shape[1], -1) for k in self.names],
                         dim=2)


def _surely_finite(t: torch.Tensor) -> bool:
    """The fast path of a NaN/Inf check (a sum instead of an elementwise test and a
    reduction: 2 vs 26 us on a 100 x 100 batch): NaN and Inf propagate through a sum, so a
    finite sum proves every entry finite; a non-finite one may be an overflow of finite
    entries, so the caller checks exactly then."""
    return not t.is_floating_point() or math.isfinite(float(t.sum()))


def _leaf_copy(model: nn.Module, tensors: dict[str, torch.Tensor]
               ) -> tuple[nn.Module, list[tuple[nn.Module, nn.Module]]] | bool:
    """(a deep copy of ``model`` whose parameters and buffers are ``tensors``, by their
    first name, every alias of a shared tensor included; (module, copy) pairs), or False
    when the model cannot be copied."""
    try:
        clone = copy.deepcopy(model)
    except Exception:   # e.g. a module holding an unpicklable handle: use functional_call
        return False
    first: dict[int, str] = {}
    for name, t in _named_tensors(model):
        key = first.setdefault(id(t), name)
        path, _, attr = name.rpartition(".")
        module = clone.get_submodule(path)
        store = module._parameters if attr in module._parameters else module._buffers
        store[attr] = tensors[key]
    return clone, list(zip(model.modules(), clone.modules()))


def _named_tensors(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """Every (name, tensor) of the model's parameters, then buffers, aliases included."""
    return [*model.named_parameters(remove_duplicate=False),
            *model.named_buffers(remove_duplicate=False)]


def _tied_names(model: nn.Module) -> Iterator[str]:
    """Names of parameters and buffers that share a tensor with an earlier name."""
    seen: set[int] = set()
    for name, t in _named_tensors(model):
        if id(t) in seen:
            yield name
        seen.add(id(t))


def weighted_average(values: Iterable[tuple[int, int, torch.Tensor]]) -> torch.Tensor:
    """sum_b n_b v_b / sum_b n_b over (b, n_b, v_b), consumed as it streams;
    ``ValueError`` naming the batch b whose v_b is NaN/Inf. One batch is returned as it
    is (no scaling passes: on ResNet-18's 11.2M parameters they cost 14% of a kept-graph
    HVP); more are accumulated in place in a copy of the first."""
    total, count, single = None, 0, True
    for i, n, val in values:
        if not (_surely_finite(val) or bool(torch.isfinite(val).all())):
            raise ValueError(f"the curvature product on data batch {i} (0-based) is NaN/Inf "
                             f"although its inputs are finite: the loss overflows there; check "
                             f"that batch, or use dtype=torch.float64")
        if total is None:
            total = val
        else:
            if single:    # second batch: a weighted copy, no longer the first batch's value
                total, single = total * count, False
            total.add_(val, alpha=n)
        count += n
    return total if single else total.div_(count)


def _normalise_data(data) -> Iterable:
    """One (inputs, targets) pair -> a one-element list; a re-iterable as it is."""
    if isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], torch.Tensor):
        return [data]
    if isinstance(data, torch.Tensor):
        raise TypeError("data must be an (inputs, targets) pair or an iterable of such "
                        "batches, got a single tensor")
    if iter(data) is data:
        raise TypeError("data is a one-shot iterator (e.g. a generator); operators iterate "
                        "over the data once per product, so pass a list or a DataLoader")
    return data


def _check_fixed_batches(data, batch_statistics: bool) -> None:
    """Refuse data whose batches may change between passes where that changes the operator:
    train-mode BatchNorm on batches that are not fixed, and a shuffling DataLoader that
    drops a different incomplete last batch each pass."""
    fixed = isinstance(data, (list, tuple))
    if isinstance(data, DataLoader):
        sampler = data.batch_sampler.sampler if data.batch_sampler is not None else data.sampler
        fixed = isinstance(sampler, SequentialSampler) and \
            type(data.batch_sampler) in (BatchSampler, type(None))
        size = data.batch_size
        if not fixed and data.drop_last and size and len(data.dataset) % size:
            raise ValueError("the DataLoader shuffles and drops its last incomplete batch, so "
                             "each pass averages over different samples and the operator is "
                             "not one matrix; pass drop_last=False or shuffle=False")
    if batch_statistics and not fixed:
        raise ValueError(
            "mode='train' BatchNorm makes the operator depend on how samples are grouped into "
            "batches, and this data (a shuffling DataLoader or another iterable) may regroup "
            "them on every pass, so the operator would not be one matrix; pass fixed batches "
            "(a list, e.g. list(loader), or a DataLoader with shuffle=False), or mode='eval'")


def _detect_reduction(loss_fn: LossFn, out: torch.Tensor, y: torch.Tensor,
                      loss: torch.Tensor) -> str:
    """'mean' or 'sum': from an ``nn.Module`` loss's ``reduction``, else by the loss of the
    batch repeated twice (equal for a mean, double for a sum); ``ValueError`` otherwise."""
    declared = getattr(loss_fn, "reduction", None) if isinstance(loss_fn, nn.Module) else None
    if declared in ("mean", "batchmean", "sum"):
        if declared == "mean" and getattr(loss_fn, "weight", None) is not None:
            raise ValueError(
                f"{type(loss_fn).__name__}(weight=..., reduction='mean') divides each batch by "
                f"its total class weight, not its number of samples, so batches do not average "
                f"to the dataset loss; use reduction='sum' (hessbench divides by the number of "
                f"samples)")
        return "sum" if declared == "sum" else "mean"
    if len(out) != len(y):
        return "mean"
    try:
        with torch.no_grad():
            ref = float(loss)
            if ref == 0.0 and out.is_floating_point():   # a perfect fit: probe elsewhere
                out = out + 1.0
                ref = float(loss_fn(out, y))
            twice = float(loss_fn(torch.cat([out, out]), torch.cat([y, y])))
    except Exception:   # the probe does not apply (e.g. a loss tied to the batch size)
        return "mean"
    if ref == 0.0:
        return "mean"
    ratio = twice / ref
    if abs(ratio - 1.0) <= 1e-3:
        return "mean"
    if abs(ratio - 2.0) <= 2e-3:
        return "sum"
    raise ValueError(f"loss_fn is neither a mean nor a sum of per-sample losses: on the first "
                     f"batch repeated twice it gives {ratio:.4g}x its value on the batch (1 for "
                     f"a mean, 2 for a sum); return the mean of the per-sample losses")
