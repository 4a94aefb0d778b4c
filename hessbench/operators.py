"""Curvature operators of a training loss, as matrix-free linear operators.

For a model f(x; theta) and a mean-reduced loss L(theta) = (1/N) sum_i l(f(x_i; theta), y_i)
this module builds, with ``torch.func``:

* :func:`hessian`  -- H = d^2 L / d theta^2, applied by reverse-over-reverse (``vjp`` of
  ``grad``) or forward-over-reverse (``jvp`` of ``grad``), vmapped over blocks of vectors.
* :func:`ggn`      -- Gauss-Newton G = (1/N) sum_i J_i^T (d^2 l / d f^2) J_i.
* :func:`fisher`   -- empirical Fisher F = (1/N) sum_i g_i g_i^T (per-sample gradients g_i).
* :func:`gradient_covariance` -- centred gradient-noise covariance
  Sigma = (1/N) sum_i g_i g_i^T - g g^T, divided by the batch size B for SGD
  (sampling with replacement; Zhu et al. 2019 Eq. 4, Wei & Schwab Eq. 5).

``data`` is one ``(inputs, targets)`` batch or any re-iterable of batches (a list, a
DataLoader). Every operator is that of the dataset's *mean* loss, each batch weighted
by its number of samples, streamed batch by batch. ``loss_fn(outputs, targets)`` may
reduce a batch by its mean or its sum (read from ``loss_fn.reduction`` or detected; a
sum is divided by the batch size), so 1 batch of 8 and 2 batches of 4 give the same
operator in every function here. The (model, loss, data) plumbing is
:class:`hessbench.problem.Problem`.

The operator is evaluated at a snapshot of the parameters taken at construction;
training the model afterwards does not change it.

References: Pearlmutter, "Fast exact multiplication by the Hessian", Neural Comput. 6
(1994); Schraudolph, "Fast curvature matrix-vector products for second-order gradient
descent", Neural Comput. 14 (2002); Zhu, Wu, Yu, Wu & Ma, ICML 2019; Wei & Schwab,
"How noise affects the Hessian spectrum in overparameterized neural networks" (2020).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Literal, NamedTuple

import numpy as np
import torch
from torch import nn
from torch.func import grad, jvp, vjp, vmap

from hessbench.problem import LossFn, ModePolicy, Problem, weighted_average
from hessbench.progress import Progress, reporter
from hessbench.validation import check_int

__all__ = ["CurvatureOperator", "OuterProductOperator", "hessian", "ggn", "fisher",
           "gradient_covariance", "as_operator", "dense_memory_bytes", "require_memory",
           "dataset_mean_gradient"]

# mat(V) -> A @ V for V of shape (n, m); the operator handles counting and chunking.
MatFn = Callable[[torch.Tensor], torch.Tensor]
# layout(v) -> parameter name -> tensor (Problem.unflatten)
Layout = Callable[[torch.Tensor], dict[str, torch.Tensor]]


def dense_memory_bytes(n: int, dtype: torch.dtype = torch.float64, copies: int = 3) -> int:
    """Bytes to hold ``copies`` dense n x n matrices (matrix, symmetrised copy, LAPACK work)."""
    return copies * n * n * torch.empty((), dtype=dtype).element_size()


def _available_memory(device: torch.device) -> int:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    import psutil

    return int(psutil.virtual_memory().available)


DENSE_BLOCK_CPU = 8
"""Identity columns per block product in ``dense()`` on a CPU (see the measurements there)."""

_DENSE_ADVICE = ("use hessbench.eigsh(op, k=...) for a few eigenvalues or "
                 "hessbench.spectral_density(op) for the whole spectrum")


def require_memory(need: int, device: torch.device, max_memory_bytes: int | None,
                   what: str, advice: str = _DENSE_ADVICE) -> int:
    """Raise ``MemoryError`` (with advice) when ``need`` bytes exceed the device's
    available memory or ``max_memory_bytes``; return the limit that was applied."""
    limit = _available_memory(device) if max_memory_bytes is None else max_memory_bytes
    if need > limit:
        raise MemoryError(f"{what} needs {need / 2**30:.2f} GiB but only {limit / 2**30:.2f} GiB "
                          f"is available; {advice}")
    return limit


class CurvatureOperator:
    """A symmetric n x n linear operator given by a block product ``V -> A V``.

    Attributes: ``shape``, ``dtype``, ``device``, ``num_params`` (= n), ``matvecs``
    (the number of vectors it has been applied to so far, a block of m counting m).
    """

    def __init__(self, mat: MatFn, num_params: int, dtype: torch.dtype, device: torch.device,
                 *, name: str = "operator", chunk_size: int | None = 32,
                 layout: Layout | None = None) -> None:
        """``layout`` splits a flat vector into parameter-shaped tensors (what
        :meth:`unflatten` does); None for an operator given as a matrix."""
        self._mat = mat
        self._layout = layout
        self.num_params = int(num_params)
        self.dtype = dtype
        self.device = torch.device(device)
        self.name = name
        self.chunk_size = None if chunk_size is None else check_int(
            "chunk_size", chunk_size, minimum=1, hint="or None for one block")
        self.matvecs = 0

    @property
    def shape(self) -> tuple[int, int]:
        return (self.num_params, self.num_params)

    def __repr__(self) -> str:
        return (f"CurvatureOperator({self.name}, n={self.num_params}, dtype={self.dtype}, "
                f"device={self.device}, matvecs={self.matvecs})")

    def _check(self, x: torch.Tensor, ndim: int) -> None:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{self.name}: expected a torch.Tensor, got {type(x).__name__}")
        if x.ndim != ndim or x.shape[0] != self.num_params:
            want = "(n,)" if ndim == 1 else "(n, m)"
            raise ValueError(f"{self.name}: expected shape {want} with n={self.num_params}, "
                             f"got {tuple(x.shape)}")
        if x.dtype != self.dtype:
            raise TypeError(f"{self.name}: vector dtype {x.dtype} differs from the operator's "
                            f"{self.dtype}; convert with v.to({self.dtype})")
        if x.device != self.device:
            raise ValueError(f"{self.name}: vector on {x.device} but operator on {self.device}; "
                             f"move it with v.to('{self.device}')")

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """A v for v of shape (n,)."""
        self._check(v, 1)
        return self.matmat(v[:, None])[:, 0]

    def matmat(self, V: torch.Tensor) -> torch.Tensor:
        """A V for V of shape (n, m), applied ``chunk_size`` columns at a time (vmapped)."""
        self._check(V, 2)
        m = V.shape[1]
        step = m if self.chunk_size is None else max(1, self.chunk_size)
        out = [self._mat(V[:, i:i + step]) for i in range(0, m, step)]
        self.matvecs += m
        return torch.cat(out, dim=1) if len(out) > 1 else out[0]

    def __matmul__(self, x: torch.Tensor) -> torch.Tensor:
        return self.matvec(x) if x.ndim == 1 else self.matmat(x)

    def unflatten(self, v: torch.Tensor) -> dict[str, torch.Tensor]:
        """Parameter name -> tensor shaped like the parameter, for a flat (n,) vector, or
        (m, *shape) per parameter for an (n, m) block such as ``EigResult.vectors``
        (column j is ``[j]``). Views of ``v``: same dtype and device."""
        if self._layout is None:
            raise ValueError(f"{self.name}: an operator built from a matrix has no parameter "
                             "layout; unflatten needs one from hessian, ggn, fisher or "
                             "gradient_covariance")
        if (not isinstance(v, torch.Tensor) or v.ndim not in (1, 2)
                or v.shape[0] != self.num_params):
            shape = tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
            raise ValueError(f"{self.name}: unflatten expects a tensor of shape (n,) or (n, m) "
                             f"with n={self.num_params}, got {shape}")
        return self._layout(v)

    def dense(self, *, chunk_size: int | None = None, max_memory_bytes: int | None = None,
              progress: Progress = None) -> torch.Tensor:
        """The dense n x n matrix, built from blocks of identity columns.

        Refuses (``MemoryError``) when it would not fit in the device's available memory
        (or ``max_memory_bytes``): the matrix and one block of identity columns and of
        their products; use :func:`hessbench.eigsh` or :func:`hessbench.spectral_density`
        then. ``progress`` (see :mod:`hessbench.progress`) counts the columns built.
        """
        n = self.num_params
        # Columns per product, measured on CPU, 1 thread, loaded machine (min of 3,
        # benchmarks/spectrum_per_param.py): the 4270-parameter MLP takes 1.2-1.4 ms per
        # column from 8 to 32 (1.8 at 256), the CNN 10.4 ms at 8, 12.4 at 16, 21.5 at 32
        # (27 at 256): its vmapped convolutions do not amortise. Re-measured with the other
        # block products (1 thread, load ~0.7): the CNN's forward-over-reverse takes 13 /
        # 17 / 35 ms per column at 8 / 32 / 128, autograd's is_grads_batched through the
        # kept graph 12 / 19 / 24, this vmapped vjp 7.3 / 18 / 26. On CUDA wide blocks
        # amortise kernel launches (the earlier rule, kept; not re-measured).
        wide = max(self.chunk_size or n, 256)
        step = min(n, chunk_size or (wide if self.device.type == "cuda" else DENSE_BLOCK_CPU))
        step = check_int("chunk_size", step, minimum=1)
        size = torch.empty((), dtype=self.dtype).element_size()
        require_memory(n * n * size + 2 * n * step * size, self.device, max_memory_bytes,
                       f"{self.name}: the dense {n} x {n} matrix")
        out = torch.empty(n, n, dtype=self.dtype, device=self.device)
        saved, self.chunk_size = self.chunk_size, step
        try:
            with reporter(progress, f"{self.name}: dense {n} x {n}") as report:
                for i in range(0, n, step):
                    w = min(step, n - i)
                    E = torch.zeros(n, w, dtype=self.dtype, device=self.device)
                    E[torch.arange(i, i + w), torch.arange(w)] = 1.0
                    out[:, i:i + w] = self.matmat(E)
                    report(i + w, n)
        finally:
            self.chunk_size = saved
        return out

    def to_scipy(self):
        """A ``scipy.sparse.linalg.LinearOperator`` in float64 (numpy in, numpy out)."""
        from scipy.sparse.linalg import LinearOperator

        def _apply(x: np.ndarray) -> np.ndarray:
            X = torch.as_tensor(np.asarray(x), device=self.device).to(self.dtype)
            one = X.ndim == 1
            Y = self.matmat(X[:, None] if one else X)
            Y = Y.to("cpu", torch.float64).numpy()
            return Y[:, 0] if one else Y

        return LinearOperator(self.shape, matvec=_apply, matmat=_apply, rmatvec=_apply,
                              dtype=np.float64)


def as_operator(A: CurvatureOperator | torch.Tensor | np.ndarray) -> CurvatureOperator:
    """Wrap a dense symmetric matrix (torch or numpy) as a :class:`CurvatureOperator`."""
    if isinstance(A, CurvatureOperator):
        return A
    if isinstance(A, np.ndarray):
        A = torch.from_numpy(A)
    if not isinstance(A, torch.Tensor):
        raise TypeError(f"expected a CurvatureOperator or a square matrix, got {type(A).__name__}")
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"expected a square matrix, got shape {tuple(A.shape)}")
    if not A.is_floating_point():
        raise TypeError(f"expected a floating-point matrix, got dtype {A.dtype}")
    if not torch.isfinite(A).all():
        raise ValueError("matrix contains NaN or Inf entries")
    return CurvatureOperator(lambda V: A @ V, A.shape[0], A.dtype, A.device, name="dense",
                             chunk_size=None)


def _block_apply(prob: Problem, one: Callable[[dict], dict], V: torch.Tensor) -> torch.Tensor:
    """Apply a per-vector map to the columns of V: vmapped for a block; called directly
    for a single column, where vmap only adds overhead (forward-over-reverse on ResNet-18:
    4.0x -> 3.2x a gradient, median of 5, torch 2.14 CPU, 1 thread)."""
    if V.shape[1] == 1:
        return prob.flatten(one(prob.unflatten(V[:, 0])))[:, None]
    return prob.flatten(vmap(one)(prob.unflatten(V)), batched=True)


def _vjp(outputs: Sequence[torch.Tensor | None], inputs: Sequence[torch.Tensor],
         cotangents: Sequence[torch.Tensor], m: int) -> list[torch.Tensor]:
    """sum_j (d outputs_j / d inputs)^T cotangents_j, one tensor per input, by one
    ``torch.autograd.grad`` through the outputs' graph (kept for further calls); for a
    block (m > 1; every cotangent and result with a leading dim m) by
    ``is_grads_batched``. An output without a graph contributes nothing, and an input no
    output depends on gets zeros."""
    live = [j for j, t in enumerate(outputs) if t is not None and t.requires_grad]
    shape = (lambda t: (m, *t.shape)) if m > 1 else (lambda t: t.shape)
    if not live:
        return [t.new_zeros(shape(t)) for t in inputs]
    out = torch.autograd.grad([outputs[j] for j in live], list(inputs),
                              [cotangents[j] for j in live], retain_graph=True,
                              allow_unused=True, is_grads_batched=m > 1)
    return [t.new_zeros(shape(t)) if g is None else g for t, g in zip(inputs, out)]


class _Block(NamedTuple):
    """A block V (n, m) and its per-parameter parts (``m`` leading for m > 1), split once
    per product rather than once per batch."""

    V: torch.Tensor
    parts: list[torch.Tensor]

    @classmethod
    def of(cls, prob: Problem, V: torch.Tensor) -> _Block:
        tree = prob.unflatten(V[:, 0] if V.shape[1] == 1 else V)
        return cls(V, [tree[k] for k in prob.names])

    @property
    def m(self) -> int:
        return self.V.shape[1]


# apply(block) -> A_b V for one batch b, from graphs built once for that batch
BatchProduct = Callable[[_Block], torch.Tensor]


def _parameter_map(prob: Problem, blk: _Block,
                   fn: Callable[[list[torch.Tensor], int], list[torch.Tensor]]) -> torch.Tensor:
    """fn(the block's per-parameter parts, m), flattened back to (n, m)."""
    tree = dict(zip(prob.names, fn(blk.parts, blk.m)))
    return prob.flatten(tree)[:, None] if blk.m == 1 else prob.flatten(tree, batched=True)


def _hessian_graphs(prob: Problem, x: torch.Tensor, y: torch.Tensor) -> BatchProduct:
    """H_b V for one batch from graphs built at the first call that needs them and then
    reused: one vector by one backward pass through the gradient g_b's graph, d(g_b . v)
    / d theta (:meth:`~hessbench.problem.Problem.gradient_graph`; Pearlmutter 1994); a
    block by ``vmap`` over ``torch.func``'s vjp of ``grad``, whose batched backward is
    faster on convolutions than autograd's ``is_grads_batched`` (small CNN, batch 100,
    16 vectors: 12 vs 25 ms; 1 thread, torch 2.14). A kept operator that serves both
    holds both graphs."""
    graphs: dict[str, object] = {}

    def single(blk: _Block) -> torch.Tensor:
        if "grads" not in graphs:
            with prob.mode_context():
                graphs["grads"] = prob.gradient_graph(x, y)
        leaves = list(prob.leaves.values())
        return _parameter_map(prob, blk, lambda vs, m: _vjp(graphs["grads"], leaves, vs, m))

    def block(blk: _Block) -> torch.Tensor:
        if "pull" not in graphs:
            with prob.mode_context():
                _, pull = vjp(lambda p: grad(prob.loss)(p, x, y), prob.params)
            # create_graph=False: the product itself is not differentiated further
            graphs["pull"] = lambda t: pull(t, create_graph=False)[0]
        return _block_apply(prob, graphs["pull"], blk.V)

    return lambda blk: single(blk) if blk.m == 1 else block(blk)


def _ggn_graphs(prob: Problem, x: torch.Tensor, y: torch.Tensor) -> BatchProduct:
    """G_b V = J^T Q (J V), Q = d^2 L_b / d f^2, by three backward passes through graphs
    built once: J v as the vjp in u of J^T u (the double-vjp trick), Q w as the vjp of the
    loss's output gradient (Q is symmetric; reverse mode works for losses without
    forward-mode derivatives, e.g. ``nn.MSELoss``), and J^T w."""
    leaves = list(prob.leaves.values())
    with torch.enable_grad():
        out = prob.leaf_outputs(x)
        u = torch.zeros_like(out, requires_grad=True)
        jt_u = torch.autograd.grad(out, leaves, u, create_graph=True, allow_unused=True)
        o = out.detach().requires_grad_(True)
        dloss = torch.autograd.grad(prob.batch_loss(o, y), o, create_graph=True)[0]

    def apply(vs: list[torch.Tensor], m: int) -> list[torch.Tensor]:
        jv = _vjp(jt_u, [u], vs, m)
        return _vjp([out], leaves, _vjp([dloss], [o], jv, m), m)

    return lambda blk: _parameter_map(prob, blk, apply)


def _graph_products(prob: Problem, build: Callable[[torch.Tensor, torch.Tensor], BatchProduct],
                    keep_graph: bool) -> MatFn:
    """V -> sum_b n_b A_b V / N with ``build`` giving each batch's product: built once, at
    the first call, and kept (``keep_graph``), or rebuilt per batch and call, streaming."""
    if not keep_graph:
        def streamed(V: torch.Tensor) -> torch.Tensor:
            blk = _Block.of(prob, V)
            return prob.dataset_average(lambda x, y: build(x, y)(blk))
        return streamed
    kept: list[tuple[int, int, BatchProduct]] = []

    def product(V: torch.Tensor) -> torch.Tensor:
        if not kept:
            kept.extend(prob.batch_states(build))
        blk = _Block.of(prob, V)
        return weighted_average((i, n, apply(blk)) for i, n, apply in kept)

    return product


def _keep_graph(prob: Problem, keep_graph: bool | None) -> bool:
    """The ``keep_graph`` default: True for one in-memory batch, else False."""
    return prob.single_batch if keep_graph is None else bool(keep_graph)


def hessian(model: nn.Module, loss_fn: LossFn, data, *, dtype: torch.dtype | None = None,
            device: torch.device | str | None = None, params: Sequence[str] | None = None,
            mode: ModePolicy = "error", chunk_size: int | None = 32,
            hvp: Literal["reverse", "forward"] = "reverse",
            keep_graph: bool | None = None) -> CurvatureOperator:
    """Hessian of the dataset-average loss; H V by (vmapped) Hessian-vector products.

    ``hvp="reverse"`` (default) is reverse-over-reverse: double backpropagation
    (Pearlmutter 1994) by plain ``torch.autograd`` through the gradient's graph
    (:meth:`~hessbench.problem.Problem.gradient_graph`) for one vector, ``vmap`` over
    ``torch.func``'s vjp of ``grad`` for a block. ``hvp="forward"`` is
    forward-over-reverse (``jvp`` of ``grad``); it fails for operations without a
    forward-mode derivative (e.g. ``nn.MSELoss`` in torch 2.x). On CPU, torch 2.14, one thread, reverse is the faster
    of the two on every workload measured (ResNet-18 batch 32: 3.0x vs 3.5x a gradient,
    blocks of 32 on the 4270-parameter MLP: 0.8x the forward time).

    ``keep_graph`` (reverse only; default: True when ``data`` is a single in-memory
    batch, i.e. a tuple or a one-element list) builds each batch's gradient graph once,
    at the first product, and reuses it: each later product is one backward pass per
    batch through those graphs, with no forward pass and no data loading, as in
    PyHessian (ResNet-18: 1.9x a gradient). The graphs' saved activations (about those
    of one backward pass over *all* the data) stay in memory as long as the operator
    lives. ``keep_graph=True`` with several batches (a list, a DataLoader) keeps one
    graph per batch and reads the data once (the first pass's batches are the operator's);
    ``False`` rebuilds the graph per batch and product, streaming the data with the memory
    of one batch (the default for several batches). Single vectors and blocks use two
    different graphs (autograd's and ``torch.func``'s), each built when first needed: a
    kept operator used for both holds both.

    ``dtype=torch.float64`` evaluates everything (parameters, inputs, buffers) in float64
    for verification. ``params`` restricts to the named parameters (others frozen).
    ``mode`` is the policy for BatchNorm/Dropout in train mode ('error', 'eval', 'train').
    ``chunk_size`` is how many vectors one vmapped HVP processes.
    """
    if hvp not in ("reverse", "forward"):
        raise ValueError(f"hvp must be 'reverse' or 'forward', got {hvp!r}")
    prob = Problem(model, loss_fn, data, dtype=dtype, device=device, params=params, mode=mode)
    if keep_graph and hvp != "reverse":
        raise ValueError("keep_graph=True needs hvp='reverse' (forward-over-reverse products "
                         "rebuild their graph each time); pass keep_graph=None or False")
    g = grad(prob.loss)

    def forward_block(V, x, y):
        def one(t):
            return jvp(lambda p: g(p, x, y), (prob.params,), (t,))[1]
        try:
            return _block_apply(prob, one, V)
        except RuntimeError as err:
            raise RuntimeError(f"forward-mode HVP failed ({err}); an operation in the model or "
                               f"loss may lack a forward-mode derivative (nn.MSELoss does in "
                               f"torch 2.x): use hvp='reverse'") from err

    if hvp == "reverse":
        product = _graph_products(prob, partial(_hessian_graphs, prob),
                                  _keep_graph(prob, keep_graph))
    else:
        def product(V: torch.Tensor) -> torch.Tensor:
            return prob.dataset_average(lambda x, y: forward_block(V, x, y))

    return CurvatureOperator(product, prob.num_params, prob.dtype, prob.device,
                             name="hessian", chunk_size=chunk_size, layout=prob.unflatten)


def ggn(model: nn.Module, loss_fn: LossFn, data, *, dtype: torch.dtype | None = None,
        device: torch.device | str | None = None, params: Sequence[str] | None = None,
        mode: ModePolicy = "error", chunk_size: int | None = 32,
        keep_graph: bool | None = None) -> CurvatureOperator:
    """Generalised Gauss-Newton G = J^T H_out J, the Hessian minus the term that carries
    the network's second derivatives; positive semi-definite for convex losses.

    ``keep_graph`` as in :func:`hessian` (default: True for one in-memory batch): the
    output's graph and the loss's output-gradient graph are built once per batch and
    kept, so a product is three backward passes and no forward pass."""
    prob = Problem(model, loss_fn, data, dtype=dtype, device=device, params=params, mode=mode)
    product = _graph_products(prob, partial(_ggn_graphs, prob), _keep_graph(prob, keep_graph))
    return CurvatureOperator(product, prob.num_params, prob.dtype, prob.device,
                             name="ggn", chunk_size=chunk_size, layout=prob.unflatten)


def dataset_mean_gradient(prob: Problem) -> torch.Tensor:
    """g = (1/N) sum_i g_i, the full-batch gradient of ``prob`` at its snapshot, shape (n,)."""
    return prob.dataset_average(lambda x, y: prob.per_sample_gradients(x, y).mean(0))


class OuterProductOperator(CurvatureOperator):
    """s [(1/N) sum_i g_i g_i^T - c g g^T] from the per-sample gradients g_i of a
    :class:`~hessbench.problem.Problem`, c = 1 when centred, else 0, s = ``scale``.

    Each product streams the batches: A V = s [sum_b G_b^T (G_b V) / N - c g (g^T V)],
    G_b the (n_b, n) per-sample gradients of batch b.

    Attributes: those of :class:`CurvatureOperator`, and ``mean_gradient``, the full-batch
    gradient g = (1/N) sum_i g_i (shape (n,)) of a centred operator, None otherwise.
    """

    mean_gradient: torch.Tensor | None

    def __init__(self, prob: Problem, *, name: str, centre: bool, scale: float,
                 chunk_size: int | None, mean_gradient: torch.Tensor | None = None) -> None:
        """``mean_gradient`` replaces the centre g of a centred operator (default: the
        mean over ``prob``'s samples; :mod:`hessbench.distributed` passes the mean over
        all ranks' samples)."""
        prob.require_per_sample(name)
        mean_grad = None
        if centre:
            mean_grad = dataset_mean_gradient(prob) if mean_gradient is None else mean_gradient

        def second_moment(V: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            G = prob.per_sample_gradients(x, y)
            return G.T @ (G @ V) / len(x)

        def product(V: torch.Tensor) -> torch.Tensor:
            second = prob.dataset_average(lambda x, y: second_moment(V, x, y))
            if mean_grad is not None:
                second = second - torch.outer(mean_grad, mean_grad @ V)
            return scale * second

        super().__init__(product, prob.num_params, prob.dtype, prob.device, name=name,
                         chunk_size=chunk_size, layout=prob.unflatten)
        self.mean_gradient = mean_grad


def fisher(model: nn.Module, loss_fn: LossFn, data, *, dtype: torch.dtype | None = None,
           device: torch.device | str | None = None, params: Sequence[str] | None = None,
           mode: ModePolicy = "error", chunk_size: int | None = None) -> OuterProductOperator:
    """Empirical Fisher F = (1/N) sum_i g_i g_i^T from per-sample gradients (uncentred)."""
    prob = Problem(model, loss_fn, data, dtype=dtype, device=device, params=params, mode=mode)
    return OuterProductOperator(prob, name="fisher", centre=False, scale=1.0,
                                chunk_size=chunk_size)


def gradient_covariance(model: nn.Module, loss_fn: LossFn, data, *, batch_size: int = 1,
                        dtype: torch.dtype | None = None, device: torch.device | str | None = None,
                        params: Sequence[str] | None = None, mode: ModePolicy = "error",
                        chunk_size: int | None = None) -> OuterProductOperator:
    """Covariance of the minibatch gradient noise, Sigma = [(1/N) sum g_i g_i^T - g g^T] / B.

    ``batch_size=1`` gives the per-sample covariance; B > 1 the covariance of a
    size-B minibatch gradient sampled with replacement (Zhu et al. 2019, Eq. 4).
    ``op.mean_gradient`` holds the full-batch gradient g.
    """
    batch_size = check_int("batch_size", batch_size, minimum=1)
    prob = Problem(model, loss_fn, data, dtype=dtype, device=device, params=params, mode=mode)
    return OuterProductOperator(prob, name="gradient_covariance", centre=True,
                                scale=1.0 / batch_size, chunk_size=chunk_size)
