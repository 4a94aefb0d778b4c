"""Issue 20 (core): every bad input gets a clear error naming the argument, and nothing
returns a number it cannot stand behind. References are dense float64 Hessians
(tolerance: relative Frobenius 1e-10, the rounding level of the tiny models)."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import hessbench as hb
from hessbench.models import mlp
from hessbench.operators import CurvatureOperator
from hessbench.problem import Problem
from hessbench.validation import check_int
from tests.reference import reference_hessian, rel_err

F64 = torch.float64
TOL64 = 1e-10


def _problem(n: int = 8, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=gen, dtype=F64)
    y = torch.randint(0, 2, (n,), generator=gen)
    return mlp(3, [3], 2, activation="tanh", seed=seed, dtype=F64), x, y


def _bn_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Tanh(), nn.Linear(4, 2)).double()


def _split(x, y, cuts):
    edges = [0, *sorted(set(cuts)), len(x)]
    return [(x[a:b], y[a:b]) for a, b in zip(edges, edges[1:]) if b > a]


# ------------------------------------------------------------- NaN/Inf in a later batch

def _nan_in_second_batch():
    model, x, y = _problem()
    x = x.clone()
    x[5, 1] = float("nan")
    return model, [(x[:4], y[:4]), (x[4:], y[4:])]


@pytest.mark.parametrize("run", [
    lambda op: hb.trace(op, "hutchinson", num_matvecs=4),
    lambda op: hb.trace(op, "exact"),
    lambda op: hb.spectral_density(op, num_probes=2, lanczos_steps=5),
    lambda op: hb.eigsh(op, k=2),
    lambda op: hb.spectrum(op),
    lambda op: op.dense(),
], ids=["hutchinson", "exact", "slq", "eigsh", "spectrum", "dense"])
@pytest.mark.parametrize("make", [hb.hessian, hb.ggn, hb.fisher],
                         ids=["hessian", "ggn", "fisher"])
def test_nan_in_a_later_batch_names_the_batch(make, run):
    model, data = _nan_in_second_batch()
    op = make(model, nn.CrossEntropyLoss(), data)     # the first batch is clean
    with pytest.raises(ValueError, match=r"data batch 1 \(0-based\) has NaN/Inf in its inputs"):
        run(op)


def test_nan_in_a_later_batch_gradient_covariance():
    model, data = _nan_in_second_batch()
    with pytest.raises(ValueError, match="data batch 1"):
        hb.gradient_covariance(model, nn.CrossEntropyLoss(), data)


def test_nan_targets_and_overflowing_loss_in_a_later_batch():
    model, x, _ = _problem()
    y = torch.zeros(8, 2, dtype=F64)
    bad_targets = y.clone()
    bad_targets[6, 0] = float("inf")
    op = hb.hessian(model, nn.MSELoss(), [(x[:4], y[:4]), (x[4:], bad_targets[4:])])
    with pytest.raises(ValueError, match="data batch 1 .* targets"):
        op.dense()
    # finite data whose loss overflows on batch 2: the product is checked too
    y_big = y.clone()
    y_big[6:, :] = 800.0

    def loss(o, t):
        return F.mse_loss(o, t) * torch.exp(t.max())

    op = hb.hessian(model, loss, [(x[:3], y[:3]), (x[3:6], y[3:6]), (x[6:], y_big[6:])])
    with pytest.raises(ValueError, match="product on data batch 2"):
        hb.trace(op, "hutchinson", num_matvecs=4)


def test_nan_from_a_custom_operator_is_an_error_not_a_number():
    op = CurvatureOperator(lambda V: V * float("nan"), 4, F64, torch.device("cpu"))
    with pytest.raises(ValueError, match="NaN/Inf"):
        hb.eigsh(op, k=1)
    with pytest.raises(ValueError, match="NaN/Inf"):
        hb.spectral_density(op, num_probes=1, lanczos_steps=2)


# --------------------------------------------------------------------- reduction

_SUM_LOSSES = {
    "module-sum": nn.CrossEntropyLoss(reduction="sum"),
    "functional-sum": lambda o, y: F.cross_entropy(o, y, reduction="sum"),
    "functional-mean": F.cross_entropy,
    "module-mean": nn.CrossEntropyLoss(),
}
_OPERATORS = {"hessian": hb.hessian, "hessian-forward": lambda *a: hb.hessian(*a, hvp="forward"),
              "ggn": hb.ggn, "fisher": hb.fisher, "gradient_covariance": hb.gradient_covariance}


def _mean_reference(kind, model, x, y):
    return _OPERATORS[kind](model, nn.CrossEntropyLoss(), (x, y)).dense()


def test_mean_reference_is_the_dense_hessian():
    model, x, y = _problem()
    ref = reference_hessian(model, nn.CrossEntropyLoss(), x, y)
    assert rel_err(_mean_reference("hessian", model, x, y), ref) <= TOL64


@pytest.mark.parametrize("loss", list(_SUM_LOSSES), ids=list(_SUM_LOSSES))
@pytest.mark.parametrize("kind", list(_OPERATORS))
def test_one_batch_of_8_equals_two_of_4_equals_the_mean_operator(kind, loss):
    model, x, y = _problem()
    ref = _mean_reference(kind, model, x, y)
    make = _OPERATORS[kind]
    one = make(model, _SUM_LOSSES[loss], (x, y)).dense()
    two = make(model, _SUM_LOSSES[loss], [(x[:4], y[:4]), (x[4:], y[4:])]).dense()
    assert rel_err(one, ref) <= TOL64
    assert rel_err(two, ref) <= TOL64


@settings(deadline=None, derandomize=True, max_examples=12)
@given(cuts=st.lists(st.integers(1, 7), max_size=4),
       loss=st.sampled_from(list(_SUM_LOSSES)),
       kind=st.sampled_from(["hessian", "ggn", "fisher"]))
def test_property_any_batch_split_and_reduction_gives_the_mean_operator(cuts, loss, kind):
    model, x, y = _problem()
    op = _OPERATORS[kind](model, _SUM_LOSSES[loss], _split(x, y, cuts))
    assert rel_err(op.dense(), _mean_reference(kind, model, x, y)) <= TOL64


def test_detected_reduction_is_recorded():
    model, x, y = _problem()
    assert Problem(model, _SUM_LOSSES["functional-sum"], (x, y)).reduction == "sum"
    assert Problem(model, F.cross_entropy, (x[:1], y[:1])).reduction == "mean"
    # a perfect fit (loss 0) is probed away from the fit
    zero = Problem(model, lambda o, t: F.mse_loss(o, t, reduction="sum"),
                   (x, model(x).detach()))
    assert zero.reduction == "sum"


@pytest.mark.parametrize("loss, match", [
    (lambda o, y: F.cross_entropy(o, y, reduction="sum") ** 0.5, "neither a mean nor a sum"),
    (lambda o, y: F.cross_entropy(o, y) + 0.1 * len(y), "neither a mean nor a sum"),
    (nn.CrossEntropyLoss(weight=torch.tensor([1.0, 3.0], dtype=F64)), "reduction='sum'"),
], ids=["sqrt-of-sum", "batch-size-term", "weighted-mean"])
def test_loss_that_is_neither_mean_nor_sum_is_refused(loss, match):
    model, x, y = _problem()
    with pytest.raises(ValueError, match=match):
        hb.hessian(model, loss, (x, y))


def test_weighted_sum_loss_is_the_mean_of_weighted_per_sample_losses():
    model, x, y = _problem()
    w = torch.tensor([1.0, 3.0], dtype=F64)
    op = hb.hessian(model, nn.CrossEntropyLoss(weight=w, reduction="sum"), _split(x, y, [3]))
    ref = reference_hessian(model, lambda o, t: F.cross_entropy(o, t, weight=w,
                                                                reduction="sum") / len(t), x, y)
    assert rel_err(op.dense(), ref) <= TOL64


# ------------------------------------------------------ one operator, one matrix

def _loader(shuffle: bool, drop_last: bool = False, n: int = 12):
    _, x, y = _problem(n)
    return DataLoader(TensorDataset(x, y), batch_size=4, shuffle=shuffle, drop_last=drop_last)


class _Reiterable:
    def __init__(self, batches):
        self.batches = batches

    def __iter__(self):
        return iter(self.batches)


@pytest.mark.parametrize("make", [hb.hessian, hb.ggn], ids=["hessian", "ggn"])
def test_train_mode_batchnorm_refuses_batches_that_may_change(make):
    _, x, y = _problem(12)
    for data in (_loader(shuffle=True), _Reiterable(_split(x, y, [4, 8]))):
        with pytest.raises(ValueError, match="fixed batches"):
            make(_bn_model(), nn.CrossEntropyLoss(), data, mode="train")


def test_train_mode_batchnorm_with_fixed_batches_is_one_matrix():
    model = _bn_model()
    ops = [hb.hessian(model, nn.CrossEntropyLoss(), data, mode="train")
           for data in (_loader(shuffle=False), list(_loader(shuffle=False)))]
    H = ops[0].dense()
    assert torch.equal(H, ops[0].dense())
    assert rel_err(ops[1].dense(), H) <= TOL64
    # eval mode does not depend on the grouping: a shuffling loader is fine there
    ev = hb.hessian(model, nn.CrossEntropyLoss(), _loader(shuffle=True), mode="eval").dense()
    model.eval()
    _, x, y = _problem(12)
    assert rel_err(ev, reference_hessian(model, nn.CrossEntropyLoss(), x, y)) <= TOL64


def test_shuffling_loader_that_drops_the_last_batch_is_refused():
    model, _, _ = _problem()
    with pytest.raises(ValueError, match="drop_last=False"):
        hb.hessian(model, nn.CrossEntropyLoss(), _loader(shuffle=True, drop_last=True, n=10))
    hb.hessian(model, nn.CrossEntropyLoss(), _loader(shuffle=True, drop_last=True, n=12))


class _FunctionalDropout(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 2).double()

    def forward(self, x):
        return self.lin(F.dropout(x, p=0.5, training=True))


@pytest.mark.parametrize("mode", ["error", "eval"])
def test_functional_dropout_is_refused(mode):
    _, x, y = _problem()
    with pytest.raises(ValueError, match="forward pass is random"):
        hb.hessian(_FunctionalDropout(), nn.CrossEntropyLoss(), (x, y), mode=mode)


@pytest.mark.parametrize("make", [hb.fisher, hb.gradient_covariance])
def test_per_sample_operators_refuse_train_mode_batchnorm(make):
    _, x, y = _problem()
    with pytest.raises(ValueError, match="per-sample curvature is undefined.*mode='eval'"):
        make(_bn_model(), nn.CrossEntropyLoss(), (x, y), mode="train")
    make(_bn_model(), nn.CrossEntropyLoss(), (x, y), mode="eval")   # the fix works


# ------------------------------------------------------------------ bad arguments

_A = torch.diag(torch.arange(1.0, 11.0, dtype=F64))

BAD_ALGORITHM_ARGS = [
    ("eigsh k=4 max_matvecs=2", lambda: hb.eigsh(_A, k=4, max_matvecs=2), ValueError,
     "max_matvecs must be an integer with 4 <= max_matvecs"),
    ("eigsh max_matvecs=0", lambda: hb.eigsh(_A, k=1, max_matvecs=0), ValueError, "max_matvecs"),
    ("eigsh max_matvecs=-1", lambda: hb.eigsh(_A, k=1, max_matvecs=-1), ValueError, "max_matvecs"),
    ("eigsh max_matvecs=5.0", lambda: hb.eigsh(_A, k=1, max_matvecs=5.0), TypeError, "max_matvecs"),
    ("eigsh tol=nan", lambda: hb.eigsh(_A, k=2, tol=float("nan")), ValueError, "tol must be finite"),
    ("eigsh tol=inf", lambda: hb.eigsh(_A, k=2, tol=float("inf")), ValueError, "tol must be finite"),
    ("eigsh tol=1.5", lambda: hb.eigsh(_A, k=2, tol=1.5), ValueError, "< 1"),
    ("eigsh tol='1e-6'", lambda: hb.eigsh(_A, k=2, tol="1e-6"), TypeError, "tol must be a real"),
    ("eigsh k=True", lambda: hb.eigsh(_A, k=True), TypeError, "k must be an integer"),
    ("eigsh k=2.0", lambda: hb.eigsh(_A, k=2.0), TypeError, "k must be an integer"),
    ("eigsh k=n", lambda: hb.eigsh(_A, k=10), ValueError, "k < n = 10"),
    ("eigsh basis_size=k", lambda: hb.eigsh(_A, k=3, basis_size=3), ValueError, "basis_size"),
    ("eigsh seed=1.5", lambda: hb.eigsh(_A, k=1, seed=1.5), TypeError, "seed"),
    ("power_iteration max_iter=0", lambda: hb.power_iteration(_A, max_iter=0), ValueError,
     "max_iter"),
    ("power_iteration k=True", lambda: hb.power_iteration(_A, k=True), TypeError, "k must be"),
    ("power_iteration tol=nan", lambda: hb.power_iteration(_A, tol=float("nan")), ValueError,
     "tol"),
    ("trace hutch++ num_matvecs=3", lambda: hb.trace(_A, "hutch++", num_matvecs=3), ValueError,
     "hutch\\+\\+ needs at least 4"),
    ("trace exact num_matvecs=-5", lambda: hb.trace(_A, "exact", num_matvecs=-5), ValueError,
     "num_matvecs"),
    ("trace num_matvecs=2.5", lambda: hb.trace(_A, "hutchinson", num_matvecs=2.5), TypeError,
     "num_matvecs must be an integer"),
    ("trace block_size=0", lambda: hb.trace(_A, "hutchinson", target_rel_error=0.1,
                                            block_size=0), ValueError, "block_size"),
    ("trace target=nan", lambda: hb.trace(_A, "hutchinson", target_rel_error=float("nan")),
     ValueError, "target_rel_error"),
    ("trace target=0", lambda: hb.trace(_A, "hutchinson", target_rel_error=0.0), ValueError,
     "target_rel_error"),
    ("slq num_probes=0", lambda: hb.spectral_density(_A, num_probes=0), ValueError, "num_probes"),
    ("slq lanczos_steps=2.5", lambda: hb.spectral_density(_A, lanczos_steps=2.5), TypeError,
     "lanczos_steps"),
]


@pytest.mark.parametrize("call, error, match", [c[1:] for c in BAD_ALGORITHM_ARGS],
                         ids=[c[0] for c in BAD_ALGORITHM_ARGS])
def test_bad_algorithm_arguments_give_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_numpy_integers_are_accepted_like_ints():
    r = hb.eigsh(_A, k=np.int64(2), max_matvecs=np.int32(50), seed=np.int64(0))
    assert np.allclose(r.values, [10.0, 9.0])
    assert hb.trace(_A, "hutchinson", num_matvecs=np.int64(4)).matvecs == 4
    assert hb.power_iteration(_A, k=np.int64(1), max_iter=np.int64(5),
                              on_unconverged="ignore").matvecs <= 5
    assert check_int("k", np.uint8(3), minimum=1) == 3


def test_hutchpp_at_its_smallest_budget_has_a_finite_stderr():
    t = hb.trace(_A, "hutch++", num_matvecs=4)
    assert t.converged and math.isfinite(t.stderr)


def _model_problem():
    model, x, y = _problem()
    return model, nn.CrossEntropyLoss(), (x, y)


BAD_OPERATOR_ARGS = [
    ("device=meta", dict(device="meta"), ValueError, "device='meta'"),
    ("device=nonsense", dict(device="tpu9"), ValueError, "device='tpu9' is not a torch device"),
    ("params=string", dict(params="0.weight"), TypeError, r"params=\['0.weight'\]"),
    ("params=duplicate", dict(params=["0.weight", "0.weight"]), ValueError, "more than once"),
    ("params=ints", dict(params=[0, 1]), TypeError, "strings"),
    ("dtype=string", dict(dtype="float64"), TypeError, "torch.dtype"),
    ("chunk_size=0", dict(chunk_size=0), ValueError, "chunk_size"),
    ("chunk_size=2.5", dict(chunk_size=2.5), TypeError, "chunk_size"),
]


@pytest.mark.parametrize("kwargs, error, match", [c[1:] for c in BAD_OPERATOR_ARGS],
                         ids=[c[0] for c in BAD_OPERATOR_ARGS])
@pytest.mark.parametrize("make", [hb.hessian, hb.ggn, hb.fisher, hb.gradient_covariance],
                         ids=["hessian", "ggn", "fisher", "gradient_covariance"])
def test_bad_operator_arguments_give_clear_errors(make, kwargs, error, match):
    with pytest.raises(error, match=match):
        make(*_model_problem(), **kwargs)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_cuda_without_a_gpu_names_the_option():
    with pytest.raises(ValueError, match="device='cuda'.*device='cpu'"):
        hb.hessian(*_model_problem(), device="cuda")


@pytest.mark.parametrize("batch_size, error", [(0, ValueError), (2.5, TypeError),
                                               (True, TypeError)])
def test_gradient_covariance_batch_size(batch_size, error):
    with pytest.raises(error, match="batch_size"):
        hb.gradient_covariance(*_model_problem(), batch_size=batch_size)


# ------------------------------------------------------------------ memory guards

def _huge(n: int = 10**9) -> CurvatureOperator:
    def never(V):
        raise AssertionError("no product may run before the memory check")
    return CurvatureOperator(never, n, torch.float32, torch.device("cpu"))


@pytest.mark.parametrize("call, match", [
    (lambda op: hb.eigsh(op, k=4), "basis_size"),
    (lambda op: hb.eigsh(op, k=10**9 - 1), "lower k"),
    (lambda op: hb.spectral_density(op), "num_probes"),
    (lambda op: hb.spectrum(op), "spectral_density"),
    (lambda op: op.dense(), "eigsh"),
], ids=["eigsh", "eigsh-k-near-n", "slq", "spectrum", "dense"])
def test_huge_operators_are_refused_before_allocating(call, match):
    with pytest.raises(MemoryError, match=match):
        call(_huge())


def test_dense_and_spectrum_count_every_copy_they_hold():
    op = hb.as_operator(_A.float())
    n = op.num_params
    with pytest.raises(MemoryError):        # the matrix alone is not enough: blocks too
        op.dense(max_memory_bytes=n * n * 4)
    assert torch.equal(op.dense(max_memory_bytes=n * n * 4 + 2 * n * n * 4), _A.float())
    need = 2 * n * n * 8 + n * n * 4        # float64 copy + LAPACK's, and the float32 one
    with pytest.raises(MemoryError):
        hb.spectrum(op, max_memory_bytes=need - 1)
    assert np.allclose(hb.spectrum(op, max_memory_bytes=need), np.arange(1.0, 11.0))


# ------------------------------------------------------------- float32 noise floor

def test_float32_eigsh_does_not_claim_convergence_below_its_noise_floor():
    gen = torch.Generator().manual_seed(0)
    Q = torch.linalg.qr(torch.randn(200, 200, generator=gen, dtype=F64)).Q
    ev = torch.linspace(-1.0, 10.0, 200, dtype=F64)
    A64 = Q @ torch.diag(ev) @ Q.T
    with pytest.warns(hb.ConvergenceWarning, match="attainable accuracy"):
        tight = hb.eigsh(A64.float(), k=3, tol=1e-10)
    assert not tight.converged
    assert 1e-8 < tight.noise_floor / 10.0 < 1e-4
    assert np.all(tight.residuals >= tight.noise_floor)
    loose = hb.eigsh(A64.float(), k=3, tol=1e-4)
    assert loose.converged
    assert np.max(np.abs(loose.values - ev.numpy()[::-1][:3])) <= 1e-4 * 10.0
    exact = hb.eigsh(A64, k=3, tol=1e-10)      # float64: no floor in the way
    assert exact.converged and exact.noise_floor < 1e-13


def test_float32_hessian_eigenvalues_within_their_reported_accuracy():
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 6, generator=gen), torch.randint(0, 3, (64,), generator=gen)
    model = mlp(6, [16], 3, activation="tanh", seed=0)
    op32 = hb.hessian(model, nn.CrossEntropyLoss(), (x, y))
    true = np.sort(np.linalg.eigvalsh(hb.hessian(model, nn.CrossEntropyLoss(), (x, y),
                                                 dtype=F64).dense().numpy()))[::-1][:5]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hb.ConvergenceWarning)
        r = hb.eigsh(op32, k=5, tol=1e-9)
    assert not r.converged and r.noise_floor > 0
    # Weyl for the noisy operator: error <= residual + noise, both within the residual
    assert np.all(np.abs(r.values - true) <= 2 * r.residuals + 1e-12)


@pytest.mark.parametrize("sigma, error", [(float("nan"), ValueError), (0.0, ValueError),
                                          (float("inf"), ValueError), ("0.1", TypeError)])
def test_density_broadening_width_is_checked(sigma, error):
    d = hb.spectral_density(_A, num_probes=1, lanczos_steps=3)
    with pytest.raises(error, match="sigma"):
        d.density(np.linspace(0, 11, 5), sigma)
