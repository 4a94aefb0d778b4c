"""Curvature operators against dense float64 references (tolerance: relative Frobenius
error <= 1e-10 in float64, the rounding level of a few thousand flops)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import hessbench as hb
from hessbench.data import batches
from hessbench.models import mlp, small_cnn
from tests.reference import check_products, flat_params, reference_hessian, rel_err

F64 = torch.float64
TOL64 = 1e-10


def _mlp_problem(activation="tanh", n=30, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=gen, dtype=F64)
    y = torch.randint(0, 3, (n,), generator=gen)
    return mlp(5, [4, 4], 3, activation=activation, seed=seed, dtype=F64), nn.CrossEntropyLoss(), x, y


def _cnn_problem(n=6):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(n, 1, 4, 4, generator=gen, dtype=F64)
    y = torch.randint(0, 3, (n,), generator=gen)
    return small_cnn(1, 3, image_size=4, channels=2, seed=1, dtype=F64), nn.CrossEntropyLoss(), x, y


@pytest.mark.parametrize("make", [lambda: _mlp_problem("tanh"), lambda: _mlp_problem("relu"),
                                  _cnn_problem], ids=["mlp-tanh", "mlp-relu", "cnn"])
def test_hessian_matches_autograd_reference(make):
    model, loss_fn, x, y = make()
    op = hb.hessian(model, loss_fn, (x, y))
    assert rel_err(op.dense(), reference_hessian(model, loss_fn, x, y)) <= TOL64


@pytest.mark.parametrize("hvp, keep_graph", [("forward", None), ("reverse", False),
                                             ("reverse", True)])
@pytest.mark.parametrize("make", [lambda: _mlp_problem("tanh"), _cnn_problem],
                         ids=["mlp-tanh", "cnn"])
def test_every_hvp_path_matches_reference(make, hvp, keep_graph):
    model, loss_fn, x, y = make()
    op = hb.hessian(model, loss_fn, (x, y), hvp=hvp, keep_graph=keep_graph, chunk_size=4)
    check_products(op, reference_hessian(model, loss_fn, x, y), model, seed=2, tol=TOL64)


def test_kept_graph_is_a_snapshot_in_the_model_mode_of_construction():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Tanh(), nn.Linear(4, 2)).double()
    x, y = torch.randn(10, 3, dtype=F64), torch.randint(0, 2, (10,))
    model.train()
    op = hb.hessian(model, nn.CrossEntropyLoss(), (x, y), mode="eval")
    model.eval()
    H = reference_hessian(model, nn.CrossEntropyLoss(), x, y)
    model.train()
    with torch.no_grad():
        model[0].weight.add_(1.0)      # training after construction does not change the operator
    v = torch.ones(op.num_params, dtype=F64)
    assert rel_err(op.matvec(v), H @ v) <= TOL64
    assert model.training


def test_keep_graph_refused_where_it_cannot_apply():
    model, loss_fn, x, y = _mlp_problem()
    with pytest.raises(ValueError, match="hvp='reverse'"):
        hb.hessian(model, loss_fn, (x, y), hvp="forward", keep_graph=True)
    with pytest.raises(ValueError, match="'reverse' or 'forward'"):
        hb.hessian(model, loss_fn, (x, y), hvp="auto")


def test_forward_mode_failure_names_the_fix():
    model = nn.Linear(3, 2).double()
    x, y = torch.randn(8, 3, dtype=F64), torch.randn(8, 2, dtype=F64)
    op = hb.hessian(model, nn.MSELoss(), (x, y), hvp="forward")
    try:
        op.matvec(torch.ones(op.num_params, dtype=F64))
    except RuntimeError as err:   # torch 2.x: MSELoss has no usable forward-mode derivative
        assert "hvp='reverse'" in str(err)
    else:                         # a torch that supports it must then give the right answer
        H = reference_hessian(model, nn.MSELoss(), x, y)
        assert rel_err(op.dense(), H) <= TOL64


def test_matvec_matmat_matmul_agree_and_are_counted():
    model, loss_fn, x, y = _mlp_problem()
    op = hb.hessian(model, loss_fn, (x, y), chunk_size=3)
    H = reference_hessian(model, loss_fn, x, y)
    V = torch.randn(op.num_params, 7, dtype=F64, generator=torch.Generator().manual_seed(0))
    assert rel_err(op.matmat(V), H @ V) <= TOL64
    assert rel_err(op.matvec(V[:, 0]), H @ V[:, 0]) <= TOL64
    assert rel_err(op @ V[:, 1], H @ V[:, 1]) <= TOL64
    assert op.matvecs == 9
    assert op.shape == (op.num_params, op.num_params)


def test_float32_operator_close_to_float64_reference():
    model, loss_fn, x, y = _mlp_problem()
    op = hb.hessian(model.float(), loss_fn, (x.float(), y))
    assert op.dtype == torch.float32
    assert rel_err(op.dense().double(), reference_hessian(model.double(), loss_fn, x, y)) <= 1e-5


def test_dtype_option_upcasts_model_and_data():
    model, loss_fn, x, y = _mlp_problem()
    op = hb.hessian(model.float(), loss_fn, (x.float(), y), dtype=F64)
    ref = reference_hessian(model.double(), loss_fn, x, y)
    assert op.dtype == F64
    # float32 parameters/data rounded once, then exact float64 arithmetic
    assert rel_err(op.dense(), ref) <= 1e-6


def _residual_term(model, loss_fn, x, y):
    """sum_i sum_c (dl_i/df_c) * Hess f_c / N with dl/df held fixed (the non-GGN part)."""
    out = model(x)
    dl_df = torch.autograd.grad(loss_fn(out, y), out)[0].detach()
    from tests.reference import flat_loss

    f = flat_loss(model, lambda o, _: (o * dl_df).sum(), x, y)
    return torch.autograd.functional.hessian(f, flat_params(model))


@pytest.mark.parametrize("make", [lambda: _mlp_problem("tanh"), _cnn_problem], ids=["mlp", "cnn"])
def test_ggn_plus_residual_equals_hessian(make):
    model, loss_fn, x, y = make()
    G = hb.ggn(model, loss_fn, (x, y)).dense()
    H = reference_hessian(model, loss_fn, x, y)
    assert rel_err(G + _residual_term(model, loss_fn, x, y), H) <= TOL64
    assert torch.linalg.eigvalsh((G + G.T) / 2).min() >= -1e-12 * torch.linalg.norm(G)


def test_ggn_equals_hessian_for_linear_model_mse():
    gen = torch.Generator().manual_seed(3)
    x, y = torch.randn(20, 4, generator=gen, dtype=F64), torch.randn(20, 2, generator=gen, dtype=F64)
    model = nn.Linear(4, 2).double()
    G = hb.ggn(model, nn.MSELoss(), (x, y)).dense()
    assert rel_err(G, hb.hessian(model, nn.MSELoss(), (x, y)).dense()) <= TOL64


@pytest.mark.parametrize("batch_size", [7, 10, 29])
def test_streamed_ragged_batches_equal_one_batch(batch_size):
    model, loss_fn, x, y = _mlp_problem(n=30)
    whole = hb.hessian(model, loss_fn, (x, y)).dense()
    streamed = hb.hessian(model, loss_fn, batches(x, y, batch_size)).dense()
    assert rel_err(streamed, whole) <= TOL64


def test_dataloader_is_accepted():
    model, loss_fn, x, y = _mlp_problem(n=30)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)
    assert rel_err(hb.hessian(model, loss_fn, loader).dense(),
                   hb.hessian(model, loss_fn, (x, y)).dense()) <= TOL64


def _per_sample_grads(model, loss_fn, x, y):
    params = list(model.parameters())
    rows = [torch.cat([g.reshape(-1) for g in torch.autograd.grad(
        loss_fn(model(x[i:i + 1]), y[i:i + 1]), params)]) for i in range(len(x))]
    return torch.stack(rows)


def test_fisher_and_gradient_covariance_match_per_sample_reference():
    model, loss_fn, x, y = _mlp_problem(n=12)
    G = _per_sample_grads(model, loss_fn, x, y)
    fisher_ref = G.T @ G / len(x)
    g = G.mean(0)
    data = batches(x, y, 5)
    assert rel_err(hb.fisher(model, loss_fn, data).dense(), fisher_ref) <= TOL64
    cov = hb.gradient_covariance(model, loss_fn, data, batch_size=4)
    assert rel_err(cov.dense(), (fisher_ref - torch.outer(g, g)) / 4) <= TOL64
    assert rel_err(cov.mean_gradient, g) <= TOL64
    assert rel_err(cov.dense() * 4, torch.from_numpy(np.cov(G.numpy().T, bias=True))) <= TOL64


def test_param_subset_is_the_matching_block():
    model, loss_fn, x, y = _mlp_problem()
    H = reference_hessian(model, loss_fn, x, y)
    names = [k for k, _ in model.named_parameters()]
    sizes = [p.numel() for p in model.parameters()]
    start = sum(sizes[:2])
    sub = hb.hessian(model, loss_fn, (x, y), params=names[2:4]).dense()
    stop = start + sizes[2] + sizes[3]
    assert rel_err(sub, H[start:stop, start:stop]) <= TOL64


def test_operator_is_a_snapshot_of_the_parameters():
    model, loss_fn, x, y = _mlp_problem()
    op = hb.hessian(model, loss_fn, (x, y))
    before = op.dense()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    assert torch.equal(op.dense(), before)


def test_to_scipy_matches_dense():
    model, loss_fn, x, y = _mlp_problem()
    op = hb.hessian(model, loss_fn, (x, y))
    lin = op.to_scipy()
    v = np.random.default_rng(0).standard_normal(op.num_params)
    assert np.allclose(lin @ v, op.dense().numpy() @ v, rtol=1e-12, atol=1e-14)
    assert lin.matmat(np.eye(op.num_params)[:, :3]).shape == (op.num_params, 3)


@given(widths=st.lists(st.integers(1, 4), min_size=1, max_size=2), seed=st.integers(0, 1000),
       act=st.sampled_from(["tanh", "relu", "sigmoid"]))
def test_property_hessian_symmetric_and_linear(widths, seed, act):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(9, 3, generator=gen, dtype=F64)
    y = torch.randint(0, 2, (9,), generator=gen)
    model = mlp(3, widths, 2, activation=act, seed=seed, dtype=F64)
    op = hb.hessian(model, nn.CrossEntropyLoss(), (x, y))
    H = op.dense()
    scale = float(torch.linalg.norm(H)) + 1e-300
    assert float(torch.linalg.norm(H - H.T)) <= 1e-12 * scale
    u, v = torch.randn(2, op.num_params, generator=gen, dtype=F64)
    lhs = op.matvec(2.5 * u - 0.75 * v)
    rhs = 2.5 * op.matvec(u) - 0.75 * op.matvec(v)
    assert float(torch.linalg.norm(lhs - rhs)) <= 1e-12 * (scale * float(torch.linalg.norm(u) + torch.linalg.norm(v)) + 1e-300)


# ------------------------------------------------------------------ bad input


def test_no_trainable_parameters():
    model, loss_fn, x, y = _mlp_problem()
    for p in model.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        hb.hessian(model, loss_fn, (x, y))


def test_unknown_param_name():
    model, loss_fn, x, y = _mlp_problem()
    with pytest.raises(ValueError, match="unknown or frozen parameter names"):
        hb.hessian(model, loss_fn, (x, y), params=["nope"])


def test_non_scalar_loss():
    model, _, x, y = _mlp_problem()
    with pytest.raises(ValueError, match="scalar"):
        hb.hessian(model, nn.CrossEntropyLoss(reduction="none"), (x, y))


def test_nan_inputs():
    model, loss_fn, x, y = _mlp_problem()
    x[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN/Inf"):
        hb.hessian(model, loss_fn, (x, y))


def test_nan_parameters():
    model, loss_fn, x, y = _mlp_problem()
    with torch.no_grad():
        next(model.parameters())[0, 0] = float("inf")
    with pytest.raises(ValueError, match="NaN"):
        hb.hessian(model, loss_fn, (x, y))


def test_empty_data():
    model, loss_fn, x, y = _mlp_problem()
    with pytest.raises(ValueError, match="empty"):
        hb.hessian(model, loss_fn, [])
    with pytest.raises(ValueError, match="empty"):
        hb.hessian(model, loss_fn, (x[:0], y[:0]))


def test_one_shot_iterator_rejected():
    model, loss_fn, x, y = _mlp_problem()
    with pytest.raises(TypeError, match="one-shot iterator"):
        hb.hessian(model, loss_fn, (b for b in batches(x, y, 10)))


def test_vector_dtype_shape_mismatch():
    model, loss_fn, x, y = _mlp_problem()
    op = hb.hessian(model, loss_fn, (x, y))
    with pytest.raises(TypeError, match="dtype"):
        op.matvec(torch.zeros(op.num_params, dtype=torch.float32))
    with pytest.raises(ValueError, match="shape"):
        op.matvec(torch.zeros(op.num_params + 1, dtype=F64))
    with pytest.raises(ValueError, match="shape"):
        op.matmat(torch.zeros(op.num_params, dtype=F64))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_vector_device_mismatch():
    model, loss_fn, x, y = _mlp_problem()
    op = hb.hessian(model, loss_fn, (x, y))
    with pytest.raises(ValueError, match="move it"):
        op.matvec(torch.zeros(op.num_params, dtype=F64, device="cuda"))


def test_dense_too_large_refused_with_advice():
    model, loss_fn, x, y = _mlp_problem()
    op = hb.hessian(model, loss_fn, (x, y))
    with pytest.raises(MemoryError, match="eigsh"):
        op.dense(max_memory_bytes=1000)
    with pytest.raises(MemoryError, match="spectral_density"):
        hb.spectrum(op, max_memory_bytes=1000)


def _bn_model():
    return nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4), nn.Tanh(), nn.Linear(4, 3)).double()


def test_batchnorm_in_train_mode_is_an_error_by_default():
    _, loss_fn, x, y = _mlp_problem()
    with pytest.raises(ValueError, match="model.eval"):
        hb.hessian(_bn_model(), loss_fn, (x, y))


def test_eval_policy_restores_train_mode_and_matches_eval_reference():
    _, loss_fn, x, y = _mlp_problem()
    model = _bn_model()
    op = hb.hessian(model, loss_fn, (x, y), mode="eval")
    H = op.dense()
    assert model.training and all(m.training for m in model.modules())
    model.eval()
    assert rel_err(H, reference_hessian(model, loss_fn, x, y)) <= TOL64


def test_train_policy_leaves_running_stats_untouched():
    _, loss_fn, x, y = _mlp_problem()
    model = _bn_model()
    before = model[1].running_mean.clone()
    hb.hessian(model, loss_fn, (x, y), mode="train").matvec(torch.ones(sum(
        p.numel() for p in model.parameters()), dtype=F64))
    assert torch.equal(model[1].running_mean, before)


def test_dropout_in_train_mode_refused_even_with_train_policy():
    _, loss_fn, x, y = _mlp_problem()
    model = nn.Sequential(nn.Linear(5, 4), nn.Dropout(0.5), nn.Linear(4, 3)).double()
    with pytest.raises(ValueError, match="Dropout"):
        hb.hessian(model, loss_fn, (x, y), mode="train")
    with pytest.raises(ValueError, match="mode must be"):
        hb.hessian(model, loss_fn, (x, y), mode="sometimes")


def test_as_operator_rejects_bad_matrices():
    with pytest.raises(ValueError, match="square"):
        hb.as_operator(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="NaN"):
        hb.as_operator(torch.tensor([[float("nan")]]))
    with pytest.raises(TypeError, match="floating"):
        hb.as_operator(torch.zeros(2, 2, dtype=torch.int64))


def test_train_policy_uses_batch_statistics():
    _, loss_fn, x, y = _mlp_problem()
    model = _bn_model()
    H = hb.hessian(model, loss_fn, (x, y), mode="train").dense()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm1d):
            m.track_running_stats = False
    ref = reference_hessian(model, loss_fn, x, y)  # train mode, batch statistics
    assert rel_err(H, ref) <= TOL64
