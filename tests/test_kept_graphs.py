"""Kept gradient graphs (``keep_graph``) of ``hessian`` and ``ggn`` on one batch, a ragged
list of batches and a DataLoader, against dense float64 references (relative Frobenius
error <= 1e-10, the rounding level of a few thousand flops); the data is read once with a
kept graph and once per product without; parameters the loss ignores or is linear in
give zero rows."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import hessbench as hb
from hessbench.data import batches
from hessbench.models import mlp
from tests.reference import check_products, flat_loss, flat_params, reference_hessian, rel_err

F64 = torch.float64
TOL64 = 1e-10


def _problem(n=23):
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(n, 5, generator=gen, dtype=F64)
    y = torch.randint(0, 3, (n,), generator=gen)
    return mlp(5, [4, 4], 3, activation="tanh", seed=4, dtype=F64), nn.CrossEntropyLoss(), x, y


def reference_ggn(model: nn.Module, loss_fn, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """J^T Q J with J = d f(x; theta) / d theta (all samples' outputs, flattened) and Q the
    Hessian of the whole-data mean loss in those outputs, by torch.autograd.functional."""
    theta = flat_params(model)
    out_of = flat_loss(model, lambda o, _: o, x, y)
    J = torch.autograd.functional.jacobian(lambda t: out_of(t).reshape(-1), theta)
    shape = out_of(theta).shape
    Q = torch.autograd.functional.hessian(lambda o: loss_fn(o.reshape(shape), y),
                                          out_of(theta).detach().reshape(-1))
    return J.T @ Q @ J


class CountingData:
    """A re-iterable of batches that counts its passes."""

    def __init__(self, data):
        self.data, self.passes = data, 0

    def __iter__(self):
        self.passes += 1
        return iter(self.data)


def _data(kind, x, y):
    if kind == "batch":
        return (x, y)
    if kind == "list":
        return batches(x, y, 7)            # 7, 7, 7, 2: ragged
    return DataLoader(TensorDataset(x, y), batch_size=7)


REFERENCES = {"hessian": reference_hessian, "ggn": reference_ggn}


@pytest.mark.parametrize("keep_graph", [None, True, False])
@pytest.mark.parametrize("kind", ["batch", "list", "loader"])
@pytest.mark.parametrize("name", ["hessian", "ggn"])
def test_kept_and_streamed_products_match_the_reference(name, kind, keep_graph):
    model, loss_fn, x, y = _problem()
    op = getattr(hb, name)(model, loss_fn, _data(kind, x, y), keep_graph=keep_graph,
                           chunk_size=4)
    check_products(op, REFERENCES[name](model, loss_fn, x, y), model, seed=5, tol=TOL64)


@pytest.mark.parametrize("name", ["hessian", "ggn"])
@pytest.mark.parametrize("keep_graph, passes", [(True, 1), (False, 3)])
def test_a_kept_graph_reads_the_data_once(name, keep_graph, passes):
    model, loss_fn, x, y = _problem()
    data = CountingData(batches(x, y, 7))
    op = getattr(hb, name)(model, loss_fn, data, keep_graph=keep_graph)
    construction = data.passes
    v = torch.ones(op.num_params, dtype=F64)
    for _ in range(3):
        op.matvec(v)
    assert data.passes - construction == passes


@pytest.mark.parametrize("keep_graph", [True, False])
def test_kept_ggn_is_a_snapshot_in_the_mode_of_construction(keep_graph):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Tanh(), nn.Linear(4, 2)).double()
    x, y = torch.randn(10, 3, dtype=F64), torch.randint(0, 2, (10,))
    model.train()
    op = hb.ggn(model, nn.CrossEntropyLoss(), batches(x, y, 5), mode="eval",
                keep_graph=keep_graph)
    model.eval()
    G = reference_ggn(model, nn.CrossEntropyLoss(), x, y)
    model.train()
    with torch.no_grad():
        model[0].weight.add_(1.0)      # training after construction does not change it
    v = torch.ones(op.num_params, dtype=F64)
    assert rel_err(op.matvec(v), G @ v) <= TOL64
    assert model.training


class _Unused(nn.Module):
    """A linear model with a parameter the forward never uses."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 2).double()
        self.spare = nn.Parameter(torch.ones(4, dtype=F64))

    def forward(self, x):
        return self.lin(x)


@pytest.mark.parametrize("name", ["hessian", "ggn"])
@pytest.mark.parametrize("keep_graph", [True, False])
def test_ignored_and_linear_parameters_give_zero_rows(name, keep_graph):
    gen = torch.Generator().manual_seed(6)
    x = torch.randn(8, 3, generator=gen, dtype=F64)
    model = _Unused()
    # mean output: linear in every parameter, so H = G = 0 (no gradient has a graph)
    op = getattr(hb, name)(model, lambda o, t: o.mean(), (x, x[:, 0]), keep_graph=keep_graph)
    V = torch.randn(op.num_params, 3, dtype=F64, generator=gen)
    assert torch.count_nonzero(op.matmat(V)) == 0 and torch.count_nonzero(op.matvec(V[:, 0])) == 0
    # cross-entropy: curved in lin's parameters, still zero rows and columns for spare
    y = torch.randint(0, 2, (8,), generator=gen)
    op = getattr(hb, name)(model, nn.CrossEntropyLoss(), (x, y), keep_graph=keep_graph)
    A = REFERENCES[name](model, nn.CrossEntropyLoss(), x, y)
    assert torch.count_nonzero(A[:4]) == 0     # spare comes first (own parameters first)
    assert rel_err(op.dense(), A) <= TOL64


def test_keep_graph_is_refused_for_forward_mode():
    model, loss_fn, x, y = _problem()
    with pytest.raises(ValueError, match="hvp='reverse'"):
        hb.hessian(model, loss_fn, batches(x, y, 7), hvp="forward", keep_graph=True)
