"""Progress callbacks of the long computations: called, monotone, ending at the total;
``progress=True`` draws a rich bar without a terminal."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import hessbench as hb
from hessbench.models import mlp

F64 = torch.float64


def _recorder() -> tuple[list[tuple[int, int]], object]:
    calls: list[tuple[int, int]] = []
    return calls, lambda done, total: calls.append((done, total))


def _check(calls: list[tuple[int, int]], done: int) -> None:
    """Non-empty, ints, done never decreasing nor above total, last call (done, done)."""
    assert calls and all(isinstance(d, int) and isinstance(t, int) for d, t in calls)
    assert all(b[0] >= a[0] for a, b in zip(calls, calls[1:]))
    assert all(d <= t for d, t in calls)
    assert calls[-1] == (done, done)


def _op() -> hb.CurvatureOperator:
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(30, 5, generator=gen, dtype=F64), torch.randint(0, 3, (30,), generator=gen)
    return hb.hessian(mlp(5, [6], 3, activation="tanh", dtype=F64), nn.CrossEntropyLoss(), (x, y))


def test_eigsh_counts_products_and_ends_at_those_used():
    calls, cb = _recorder()
    r = hb.eigsh(_op(), k=3, tol=1e-8, progress=cb)
    _check(calls, r.matvecs)
    assert calls[0][1] == 50 * 32      # the planned budget first, then what was needed


def test_eigsh_float32_noise_probe_is_counted():
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(30, 5, generator=gen), torch.randint(0, 3, (30,), generator=gen)
    op = hb.hessian(mlp(5, [6], 3, activation="tanh"), nn.CrossEntropyLoss(), (x, y))
    calls, cb = _recorder()
    r = hb.eigsh(op, k=2, tol=1e-3, progress=cb)
    _check(calls, r.matvecs)


def test_spectral_density_counts_steps_and_stops_early():
    calls, cb = _recorder()
    hb.spectral_density(_op(), num_probes=3, lanczos_steps=12, progress=cb)
    assert calls == [(j, 12) for j in range(1, 12)] + [(12, 12)]
    calls, cb = _recorder()   # Krylov spaces of dimension 2: two steps, then done
    hb.spectral_density(torch.diag(torch.tensor([1.0, 1.0, 2.0, 2.0], dtype=F64)),
                        num_probes=2, lanczos_steps=4, progress=cb)
    assert calls == [(1, 4), (2, 2)]


def test_dense_and_spectrum_count_columns():
    op = _op()
    calls, cb = _recorder()
    dense = op.dense(chunk_size=16, progress=cb)
    _check(calls, op.num_params)
    assert [d for d, _ in calls] == list(range(16, op.num_params, 16)) + [op.num_params]
    calls, cb = _recorder()
    ev = hb.spectrum(op, progress=cb)
    _check(calls, op.num_params)
    assert np.allclose(ev, torch.linalg.eigvalsh(dense).numpy(), atol=1e-12)


def test_progress_true_without_a_terminal(capsys):
    """No tty under pytest's capture: rich still renders (no animation) and the result is
    the same as without progress."""
    op = _op()
    a = hb.eigsh(op, k=2, progress=True)
    b = hb.eigsh(op, k=2)
    assert np.array_equal(a.values, b.values)
    hb.spectral_density(op, num_probes=2, lanczos_steps=5, progress=True)
    hb.spectrum(op, progress=True)
    assert "spectral_density" in capsys.readouterr().err


@pytest.mark.parametrize("bad", ["yes", 1])
def test_bad_progress_is_refused(bad):
    with pytest.raises(TypeError, match="progress must be None, a bool or a callable"):
        hb.spectral_density(_op(), num_probes=1, lanczos_steps=3, progress=bad)
