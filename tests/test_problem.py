"""hessbench.problem against per-sample torch.autograd loops in float64 (tolerance 1e-12:
the same flops in another order) and the core's GGN operator (relative Frobenius 1e-10)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import hessbench as hb
from hessbench.models import mlp
from hessbench.problem import Problem, flatten, trainable_parameters
from hessbench.utils import seeded_generator
from tests.reference import rel_err

F64 = torch.float64


def _tanh_net(out: int = 2) -> nn.Module:
    model = mlp(3, [5], out, activation="tanh", seed=0, dtype=F64)
    model[0].bias.requires_grad_(False)
    return model


def _data(n: int = 7, classes: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    return (torch.randn(n, 3, generator=seeded_generator(1), dtype=F64),
            torch.randint(0, classes, (n,), generator=seeded_generator(2)))


def test_per_sample_gradients_match_autograd_loop():
    model, (x, y) = _tanh_net(), _data()
    loss_fn = torch.nn.functional.cross_entropy
    prob = Problem(model, loss_fn, (x, y))
    got = prob.per_sample_gradients(x, y)
    params = [p for p in model.parameters() if p.requires_grad]
    ref = torch.stack([flatten(torch.autograd.grad(loss_fn(model(x[i:i + 1]), y[i:i + 1]),
                                                   params)) for i in range(len(x))])
    assert got.shape == (len(x), sum(p.numel() for p in params))
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="differ in length"):
        prob.per_sample_gradients(x, y[:3])
    with pytest.raises(ValueError, match="differ in length"):
        Problem(model, loss_fn, (x, y[:3]))


@pytest.mark.parametrize("out", [1, 3])
def test_per_sample_jacobians_match_autograd_loop(out):
    model, (x, y) = _tanh_net(out), _data()
    prob = Problem(model, nn.MSELoss(), (x, torch.zeros(len(x), out, dtype=F64)))
    jac = prob.per_sample_jacobians(x)
    params = [p for p in model.parameters() if p.requires_grad]
    for i in range(len(x)):
        rows = [flatten(torch.autograd.grad(model(x[i:i + 1])[0, j], params))
                for j in range(out)]
        torch.testing.assert_close(jac[i], torch.stack(rows), rtol=1e-12, atol=1e-12)
    assert jac.shape == (len(x), out, prob.num_params)


def test_per_sample_jacobians_give_the_gauss_newton_matrix():
    """MSE, mean over N samples and k outputs: G = (2 / (N k)) sum_i J_i^T J_i."""
    model, (x, _) = _tanh_net(3), _data(11)
    y = torch.randn(11, 3, generator=seeded_generator(3), dtype=F64)
    prob = Problem(model, nn.MSELoss(), (x, y))
    j = prob.per_sample_jacobians(x)
    gn = 2.0 * torch.einsum("bon,bom->nm", j, j) / j[:, :, 0].numel()
    assert rel_err(gn, hb.ggn(model, nn.MSELoss(), (x, y)).dense()) <= 1e-10


def test_flatten_and_unflatten_are_inverse():
    model, (x, y) = _tanh_net(), _data()
    prob = Problem(model, torch.nn.functional.cross_entropy, (x, y))
    v = torch.arange(prob.num_params, dtype=F64)
    assert torch.equal(prob.flatten(prob.unflatten(v)), v)
    block = torch.randn(prob.num_params, 4, generator=seeded_generator(0), dtype=F64)
    assert torch.equal(prob.flatten(prob.unflatten(block), batched=True), block)
    assert torch.equal(prob.flat_params(),
                       flatten(p.detach() for p in model.parameters() if p.requires_grad))


def test_trainable_parameters_errors():
    model = _tanh_net()
    assert list(trainable_parameters(model)) == ["0.weight", "2.weight", "2.bias"]
    assert list(trainable_parameters(model, ["2.bias", "0.weight"])) == ["2.bias", "0.weight"]
    with pytest.raises(ValueError, match="unknown or frozen parameter names"):
        trainable_parameters(model, ["0.bias"])
    with pytest.raises(ValueError, match="no trainable parameters"):
        trainable_parameters(model, [])
    with pytest.raises(TypeError, match="torch.nn.Module"):
        trainable_parameters(lambda x: x)
    model.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        trainable_parameters(model)
