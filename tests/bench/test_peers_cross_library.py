"""hessbench against curvlinops (skipped when it is not installed) on a small float64
model: the HVP and the dense Hessian agree to rounding (relative error <= 1e-10), the top
eigenvalues by hb.eigsh (tol 1e-10) match ARPACK's on curvlinops' operator to 1e-8
relative, and the exact traces of both operators agree to 1e-10; hessbench's Hutch++ with
the whole budget n is within 5 standard errors of that trace."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import hessbench as hb
from hessbench.data import batches
from hessbench.models import mlp
from tests.reference import rel_err

curvlinops = pytest.importorskip("curvlinops", reason="curvlinops is not installed "
                                 "(pip install hessbench[peers])")
F64 = torch.float64


@pytest.fixture(scope="module")
def small():
    gen = torch.Generator().manual_seed(9)
    x = torch.randn(40, 6, generator=gen, dtype=F64)
    y = torch.randint(0, 3, (40,), generator=gen)
    model = mlp(6, [5], 3, activation="tanh", seed=9, dtype=F64)
    data = batches(x, y, 15)            # 15, 15, 10: ragged, weighted by samples
    params = [p for p in model.parameters() if p.requires_grad]
    theirs = curvlinops.HessianLinearOperator(model, nn.CrossEntropyLoss(), params, data)
    ours = hb.hessian(model, nn.CrossEntropyLoss(), data)
    return ours, theirs


def test_hvp_and_dense_agree(small):
    ours, theirs = small
    V = torch.randn(ours.num_params, 3, dtype=F64, generator=torch.Generator().manual_seed(1))
    assert rel_err(ours.matvec(V[:, 0]), theirs @ V[:, 0]) <= 1e-10
    assert rel_err(ours.matmat(V), theirs @ V) <= 1e-10
    eye = torch.eye(ours.num_params, dtype=F64)
    assert rel_err(ours.dense(), theirs @ eye) <= 1e-10


def test_top_k_agrees_with_arpack_on_curvlinops(small):
    from scipy.sparse.linalg import eigsh

    ours, theirs = small
    top = hb.eigsh(ours, k=4, tol=1e-10, seed=0)
    v0 = np.random.default_rng(0).standard_normal(ours.num_params)
    ref = np.sort(eigsh(theirs.to_scipy(), k=4, which="LA", tol=1e-12, v0=v0,
                        return_eigenvectors=False))[::-1]
    assert top.converged
    np.testing.assert_allclose(top.values, ref, rtol=1e-8)


def test_traces_agree(small):
    ours, theirs = small
    n = ours.num_params
    exact = float(torch.trace(theirs @ torch.eye(n, dtype=F64)))
    assert hb.trace(ours, "exact").value == pytest.approx(exact, rel=1e-10)
    est = hb.trace(ours, "hutch++", num_matvecs=n - n % 3, seed=0)
    assert abs(est.value - exact) <= 5 * est.stderr + 1e-10 * abs(exact)
