"""Problem's streaming fast paths: the NaN/Inf check by a sum (exact fallback on
overflow), and functional calls without re-tying on models that share no tensors
(and with it on models that do)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import hessbench as hb
from hessbench.problem import Problem, weighted_average
from tests.reference import reference_hessian, rel_err

F64 = torch.float64


def test_weighted_average_names_the_non_finite_batch():
    ok = torch.ones(3)
    with pytest.raises(ValueError, match="batch 1 "):
        weighted_average([(0, 2, ok), (1, 1, torch.tensor([1.0, float("nan"), 1.0]))])
    with pytest.raises(ValueError, match="batch 0 "):
        weighted_average([(0, 2, torch.tensor([float("inf"), -float("inf"), 0.0]))])


def test_an_overflowing_sum_of_finite_values_is_no_error():
    big = torch.full((4,), 3e38, dtype=torch.float32)     # sums to inf in float32
    assert torch.isinf(big.sum())
    assert torch.equal(weighted_average([(0, 1, big)]), big)
    model = nn.Linear(4, 1)
    prob = Problem(model, nn.MSELoss(), (torch.zeros(2, 4), torch.zeros(2, 1)))
    prob.data = [(big[None].repeat(2, 1), torch.zeros(2, 1))]  # finite inputs, inf sum
    assert len(list(prob.batches())) == 1


def test_nan_inputs_are_still_refused_by_name():
    model = nn.Linear(3, 1).double()
    x = torch.zeros(4, 3, dtype=F64)
    bad = x.clone()
    bad[2, 1] = float("nan")
    op = hb.hessian(model, nn.MSELoss(), [(x, x[:, :1]), (bad, x[:, :1])])
    with pytest.raises(ValueError, match="data batch 1 .* inputs"):
        op.matvec(torch.ones(op.num_params, dtype=F64))


class _Tied(nn.Module):
    """Two layers sharing one weight (a tied encoder/decoder)."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(3, 3).double()
        self.b = nn.Linear(3, 3).double()
        self.b.weight = self.a.weight

    def forward(self, x):
        return self.b(torch.tanh(self.a(x)))


@pytest.mark.parametrize("keep_graph", [True, False])
def test_tied_weights_are_one_parameter(keep_graph):
    gen = torch.Generator().manual_seed(7)
    x, y = torch.randn(9, 3, generator=gen, dtype=F64), torch.randint(0, 3, (9,), generator=gen)
    model = _Tied()
    assert Problem(model, nn.CrossEntropyLoss(), (x, y))._tied
    assert not Problem(nn.Linear(3, 3).double(), nn.CrossEntropyLoss(), (x, y))._tied
    op = hb.hessian(model, nn.CrossEntropyLoss(), [(x[:4], y[:4]), (x[4:], y[4:])],
                    keep_graph=keep_graph)
    H = reference_hessian(model, nn.CrossEntropyLoss(), x, y)
    assert op.num_params == 9 + 3 + 3
    assert rel_err(op.dense(), H) <= 1e-10


class _Uncopyable(nn.Module):
    """A model deepcopy refuses (it holds a lock)."""

    def __init__(self):
        super().__init__()
        import threading

        self.lin = nn.Linear(3, 2).double()
        self.lock = threading.Lock()

    def forward(self, x):
        return torch.tanh(self.lin(x))


def test_a_model_that_cannot_be_copied_goes_through_functional_call():
    gen = torch.Generator().manual_seed(8)
    x, y = torch.randn(6, 3, generator=gen, dtype=F64), torch.randint(0, 2, (6,), generator=gen)
    model = _Uncopyable()
    prob = Problem(model, nn.CrossEntropyLoss(), (x, y))
    prob.leaf_outputs(x)
    assert prob._copy is False
    op = hb.hessian(model, nn.CrossEntropyLoss(), [(x[:3], y[:3]), (x[3:], y[3:])])
    assert rel_err(op.dense(), reference_hessian(model, nn.CrossEntropyLoss(), x, y)) <= 1e-10


def test_the_leaf_copy_follows_the_mode_policy():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Tanh(), nn.Linear(4, 2)).double()
    x, y = torch.randn(10, 3, dtype=F64), torch.randint(0, 2, (10,))
    for mode in ("eval", "train"):
        model.train(mode == "train")
        H = reference_hessian(model, nn.CrossEntropyLoss(), x, y)  # (updates running stats)
        model.train()
        op = hb.hessian(model, nn.CrossEntropyLoss(), [(x, y)], mode=mode, keep_graph=False)
        stats = model[1].running_mean.clone()
        v = torch.ones(op.num_params, dtype=F64)
        assert rel_err(op.matvec(v), H @ v) <= 1e-10
        assert torch.equal(model[1].running_mean, stats) and model.training
