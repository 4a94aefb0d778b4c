"""The (model, loss, data) problem that curvature operators and training routines act on.

A model f(x; theta) with trainable parameters theta, a loss ``loss_fn(outputs, targets)``
that returns the *mean* loss over a batch, and data given as one ``(inputs, targets)``
batch or a re-iterable of batches (a list, a DataLoader) define the dataset average

    L(theta) = sum_b n_b L_b(theta) / sum_b n_b,

L_b the mean loss of batch b and n_b its number of samples, so ragged batches weigh
what their samples weigh. theta in R^n is the concatenation of the trainable
parameters in ``model.named_parameters()`` order, each flattened row-major (the order
:func:`torch.nn.utils.parameters_to_vector` uses).

:class:`Problem` holds a snapshot of theta for ``torch.func`` (flattening, functional
calls, batch iteration, the train/eval mode policy, per-sample gradients and output
Jacobians); :func:`trainable_parameters` gives the live parameters of a model, for
routines that update the model in place.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Literal

import torch
from torch import nn
from torch.func import functional_call, grad, jacrev, vmap

__all__ = ["LossFn", "Batch", "ModePolicy", "Problem", "trainable_parameters", "flatten"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``loss_fn(outputs, targets)``: the mean loss over the batch, a scalar tensor."""
Batch = tuple[torch.Tensor, torch.Tensor]
"""One ``(inputs, targets)`` batch."""
ModePolicy = Literal["error", "eval", "train"]
"""What to do with BatchNorm/Dropout in train mode: refuse, evaluate in eval mode, or use
batch statistics (BatchNorm only; running statistics untouched)."""

_STOCHASTIC = (nn.modules.batchnorm._BatchNorm, nn.modules.dropout._DropoutNd, nn.Dropout)


def trainable_parameters(model: nn.Module,
                         names: Sequence[str] | None = None) -> dict[str, nn.Parameter]:
    """The live parameters with ``requires_grad``, by name, in ``named_parameters()`` order.

    ``names`` selects a subset (in the order given). Raises ``TypeError`` for a non-module
    and ``ValueError`` for unknown or frozen names, or when nothing is left.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    named = {k: p for k, p in model.named_parameters() if p.requires_grad}
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
    the first batch: it must be a finite scalar, and the parameters finite.

    Attributes: ``model``, ``loss_fn``, ``mode``, ``data`` (a re-iterable of batches),
    ``device``, ``dtype``, ``names``, ``shapes``, ``sizes``, ``num_params`` (= n),
    ``params`` (the snapshot, name -> tensor) and ``const`` (the constants).
    """

    def __init__(self, model: nn.Module, loss_fn: LossFn, data, *,
                 dtype: torch.dtype | None = None, device: torch.device | str | None = None,
                 params: Sequence[str] | None = None, mode: ModePolicy = "error") -> None:
        named = trainable_parameters(model, params)
        first = next(iter(named.values()))
        self.device = torch.device(device) if device is not None else first.device
        self.dtype = dtype if dtype is not None else first.dtype
        if not self.dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating-point dtype, got {self.dtype}")
        self.model, self.loss_fn, self.mode = model, loss_fn, mode
        self.names = list(named)
        self.shapes = [p.shape for p in named.values()]
        self.sizes = [p.numel() for p in named.values()]
        self.num_params = sum(self.sizes)
        self.params = {k: self._cast(p.detach()).clone() for k, p in named.items()}
        self.const = {k: self._cast(t.detach()).clone()
                      for k, t in [*model.named_parameters(), *model.named_buffers()]
                      if k not in named}
        self._check_mode()
        self.data = _normalise_data(data)
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
        tensors in its dtype; ``ValueError`` when there is none."""
        empty = True
        for batch in self.data:
            if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
                raise TypeError("each batch must be an (inputs, targets) pair, got "
                                f"{type(batch).__name__}")
            if len(batch[0]) == 0:
                continue
            empty = False
            yield self._cast_batch(*batch)
        if empty:
            raise ValueError("data is empty: no batch with at least one sample")

    @property
    def single_batch(self) -> bool:
        """Whether the data is one in-memory batch (a tuple, or a one-element list)."""
        return isinstance(self.data, (list, tuple)) and len(self.data) == 1

    def _check_first_batch(self) -> None:
        x, y = next(iter(self.batches()))
        with self.mode_context():
            loss = self.loss(self.params, x, y)
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
            raise ValueError(f"loss_fn must return a scalar (the mean loss over the batch), got "
                             f"{shape}; use reduction='mean'")
        if not torch.isfinite(loss):
            raise ValueError(f"loss is {loss.item()} on the first batch; check the inputs and "
                             f"parameters for NaN/Inf")
        for k, p in self.params.items():
            if not torch.isfinite(p).all():
                raise ValueError(f"parameter {k!r} contains NaN or Inf")

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
        return functional_call(self.model, {**p, **self.const}, (x,))

    def loss(self, p: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The mean loss of the batch (x, y) at parameters p."""
        return self.loss_fn(self.outputs(p, x), y)

    def dataset_average(self, per_batch: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
                        ) -> torch.Tensor:
        """sum_b n_b per_batch(x_b, y_b) / sum_b n_b over the batches, streamed, in the
        mode policy's context."""
        total, count = None, 0
        with self.mode_context():
            for x, y in self.batches():
                val = per_batch(x, y) * len(x)
                total = val if total is None else total + val
                count += len(x)
        return total / count

    def per_sample_gradients(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(b, n): row i is g_i = grad_theta l(f(x_i; theta), y_i) at the snapshot, by
        ``vmap(grad)`` in the mode policy's context. The model must not mix samples (no
        BatchNorm with batch statistics)."""
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
        x = self._cast(x)

        def one(p, xi):
            return self.outputs(p, xi.unsqueeze(0)).reshape(-1)

        with self.mode_context():
            jac = vmap(jacrev(one), in_dims=(None, 0))(self.params, x)
        return torch.cat([jac[k].reshape(len(x), jac[k].shape[1], -1) for k in self.names],
                         dim=2)


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
