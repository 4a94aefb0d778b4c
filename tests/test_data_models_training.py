"""Data, models and training loops: seeded, deterministic, with clear errors."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from hessbench.data import batches, digits, gaussian_clusters, torchvision_dataset
from hessbench.models import mlp, small_cnn
from hessbench.training import train
from hessbench.utils import resolve_device, seeded_generator


def test_gaussian_clusters_shape_normalisation_and_seed():
    x, y = gaussian_clusters(5, 40, dim=10, seed=3)
    assert x.shape == (200, 10) and torch.bincount(y).tolist() == [40] * 5
    assert abs(float(x.mean())) < 1e-6 and abs(float(x.std()) - 1) < 1e-6
    x2, y2 = gaussian_clusters(5, 40, dim=10, seed=3)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert not torch.equal(x, gaussian_clusters(5, 40, dim=10, seed=4)[0])


def test_gaussian_clusters_bad_input():
    with pytest.raises(ValueError, match="num_classes"):
        gaussian_clusters(1, 10)
    with pytest.raises(ValueError, match="samples_per_class"):
        gaussian_clusters(3, 0)


def test_digits_subset_is_seeded_and_standardised():
    x, y = digits(300, seed=1)
    assert x.shape == (300, 64) and set(y.tolist()) <= set(range(10))
    assert torch.equal(x, digits(300, seed=1)[0])
    assert float(x.std(0).max()) < 1.5
    with pytest.raises(ValueError, match="num_samples"):
        digits(0)


def test_digits_statistics_come_from_the_fit_on_samples_only():
    x, _ = digits(300, seed=1, fit_on=200)
    train, test = x[:200].double(), x[200:].double()
    assert float(train.mean(0).abs().max()) < 1e-6
    nonconstant = train.std(0) > 0
    assert torch.allclose(train.std(0)[nonconstant], torch.ones(int(nonconstant.sum()),
                                                                 dtype=torch.float64), atol=1e-6)
    assert float(test.mean(0).abs().max()) > 1e-3   # the test part is not re-centred
    assert torch.equal(x[:200], digits(300, seed=1, fit_on=200)[0][:200])
    with pytest.raises(ValueError, match="fit_on"):
        digits(300, fit_on=301)


def test_torchvision_dataset_never_downloads(tmp_path):
    with pytest.raises(FileNotFoundError, match="never downloads"):
        torchvision_dataset("mnist", tmp_path)
    with pytest.raises(ValueError, match="unknown data set"):
        torchvision_dataset("imagenet", tmp_path)


def test_batches_are_ragged_and_complete():
    x, y = torch.arange(10.0)[:, None], torch.arange(10)
    parts = batches(x, y, 4)
    assert [len(b[0]) for b in parts] == [4, 4, 2]
    assert torch.equal(torch.cat([b[1] for b in parts]), y)


def test_models_are_seeded():
    a, b = mlp(4, [3], 2, seed=5), mlp(4, [3], 2, seed=5)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert small_cnn(seed=0)(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    with pytest.raises(ValueError, match="activation"):
        mlp(4, [3], 2, activation="swish9")


def test_linear_mlp_is_the_product_of_its_weight_matrices():
    model = mlp(4, [3, 5], 2, activation="linear", bias=False, seed=1, dtype=torch.float64)
    weights = [m.weight for m in model if isinstance(m, nn.Linear)]
    x = torch.randn(7, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(model(x), x @ (weights[2] @ weights[1] @ weights[0]).T, atol=1e-14)


def test_training_is_deterministic_and_decreases_loss():
    x, y = gaussian_clusters(3, 30, dim=5, seed=0)
    runs = []
    for _ in range(2):
        model = mlp(5, [8], 3, seed=0)
        runs.append(train(model, nn.CrossEntropyLoss(), x, y, lr=0.1, steps=200, batch_size=16,
                          seed=2, eval_every=50))
    assert runs[0].losses == runs[1].losses
    assert runs[0].final_loss < runs[0].losses[0]


def test_training_stops_on_plateau_and_target():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(50, 5, generator=gen)
    y = x @ torch.ones(5, 1) + 0.3 * torch.randn(50, 1, generator=gen)  # noise floor ~0.09
    r = train(nn.Linear(5, 1), nn.MSELoss(), x, y, lr=0.1, steps=20000, eval_every=20,
              plateau_rtol=1e-4, patience=3)
    assert r.stopped == "plateau" and r.steps < 20000
    t = train(nn.Linear(5, 1), nn.MSELoss(), x, y, lr=0.1, steps=5000, eval_every=5,
              target_loss=0.5)
    assert t.stopped == "target_loss" and t.final_loss < 0.5


def test_momentum_is_pytorch_heavy_ball_and_on_step_sees_every_update():
    """On L = (a/2) w^2 (MSE of a * w on one point, a = 2), heavy ball v <- mu v + g,
    w <- w - lr v gives the closed recurrence; on_step is called after each update."""
    x, y = torch.ones(1, 1, dtype=torch.float64), torch.zeros(1, 1, dtype=torch.float64)
    model = nn.Linear(1, 1, bias=False).double()
    with torch.no_grad():
        model.weight.fill_(1.0)
    seen: list[tuple[int, float]] = []
    train(model, nn.MSELoss(), x, y, lr=0.1, steps=5, momentum=0.9,
          on_step=lambda s: seen.append((s, model.weight.item())))
    w, v, want = 1.0, 0.0, []
    for s in range(1, 6):
        v = 0.9 * v + 2.0 * w          # d/dw of w^2
        w = w - 0.1 * v
        want.append((s, w))
    assert [s for s, _ in seen] == [1, 2, 3, 4, 5]
    assert [w for _, w in seen] == pytest.approx([w for _, w in want], rel=1e-14)


def test_training_that_starts_below_the_target_takes_no_step():
    x, y = gaussian_clusters(3, 10, dim=5, seed=0)
    model = mlp(5, [4], 3)
    r = train(model, nn.CrossEntropyLoss(), x, y, lr=0.1, steps=50, target_loss=1e9)
    assert r.steps == 0 and r.stopped == "target_loss"


def test_training_errors():
    x, y = gaussian_clusters(3, 10, dim=5, seed=0)
    model = mlp(5, [4], 3)
    with pytest.raises(ValueError, match="lr"):
        train(model, nn.CrossEntropyLoss(), x, y, lr=0.0, steps=1)
    with pytest.raises(ValueError, match="batch_size"):
        train(model, nn.CrossEntropyLoss(), x, y, lr=0.1, steps=1, batch_size=1000)
    with pytest.raises(ValueError, match="momentum"):
        train(model, nn.CrossEntropyLoss(), x, y, lr=0.1, steps=1, momentum=1.0)
    with pytest.raises(ValueError, match="empty"):
        train(model, nn.CrossEntropyLoss(), x[:0], y[:0], lr=0.1, steps=1)
    with pytest.raises(FloatingPointError, match="diverged"):
        train(model, nn.MSELoss(), x, torch.randn(30, 3), lr=1e6, steps=50, eval_every=10)
    for p in model.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable"):
        train(model, nn.CrossEntropyLoss(), x, y, lr=0.1, steps=1)


def test_utils():
    g1, g2 = seeded_generator(3), seeded_generator(3)
    assert torch.equal(torch.rand(3, generator=g1), torch.rand(3, generator=g2))
    with pytest.raises(TypeError, match="seed"):
        seeded_generator(1.5)
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="cuda"):
            resolve_device("cuda")
