"""Exact references for the tests: dense Hessians by torch.autograd in float64."""
from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call


def flat_params(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def flat_loss(model: nn.Module, loss_fn, x: torch.Tensor, y: torch.Tensor):
    """theta (flat) -> loss, for torch.autograd.functional references."""
    names = [k for k, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]

    def f(theta: torch.Tensor) -> torch.Tensor:
        parts = torch.split(theta, [s.numel() for s in shapes])
        tree = {k: t.view(s) for k, t, s in zip(names, parts, shapes)}
        return loss_fn(functional_call(model, tree, (x,)), y)

    return f


def reference_hessian(model: nn.Module, loss_fn, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Dense Hessian by reverse-over-reverse autograd (torch.autograd.functional.hessian)."""
    return torch.autograd.functional.hessian(flat_loss(model, loss_fn, x, y), flat_params(model))


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """||a - b|| / ||b|| (Frobenius), as a float (inputs detached)."""
    a, b = a.detach(), b.detach()
    return float(torch.linalg.norm(a - b) / torch.linalg.norm(b))


def random_symmetric(n: int, seed: int, spectrum=None) -> torch.Tensor:
    """A seeded random symmetric float64 matrix: (G + G^T) / 2 for Gaussian G, or, with
    ``spectrum`` (length n) given, Q diag(spectrum) Q^T for a random orthogonal Q."""
    gen = torch.Generator().manual_seed(seed)
    if spectrum is None:
        A = torch.randn(n, n, generator=gen, dtype=torch.float64)
        return (A + A.T) / 2
    Q = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64)).Q
    return Q @ torch.diag(torch.as_tensor(spectrum, dtype=torch.float64)) @ Q.T


def check_products(op, A: torch.Tensor, model: nn.Module, seed: int, tol: float = 1e-10) -> None:
    """op's matvec and matmat against the dense reference A, twice (a kept graph is reused
    by the second round): relative error <= tol, no graph on the results, no .grad left."""
    V = torch.randn(op.num_params, 6, dtype=A.dtype, generator=torch.Generator().manual_seed(seed))
    for _ in range(2):
        single, block = op.matvec(V[:, 0]), op.matmat(V)
        assert rel_err(single, A @ V[:, 0]) <= tol
        assert rel_err(block, A @ V) <= tol
        assert not single.requires_grad and not block.requires_grad
    assert all(p.grad is None for p in model.parameters())
