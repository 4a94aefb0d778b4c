"""hessbench.distributed on 2 gloo processes against the single-process operators on the
union of the shards (float64, relative 1e-10): unequal shards, ragged batches, an empty
shard and a sum-reduced loss; algorithms bit-identical across ranks; the errors."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import hessbench as hb
from hessbench import distributed as hd
from tests import distributed_worker as worker

WORKER = Path(worker.__file__)
TIMEOUT_S = 90.0


def _launch(world: int, tmp: Path) -> list[dict]:
    """Run ``world`` worker processes; fail with the stderr of any that fails or hangs."""
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(WORKER.parents[1]), os.environ.get("PYTHONPATH", "")])}
    logs = [open(tmp / f"rank{r}.log", "w+") for r in range(world)]
    procs = [subprocess.Popen([sys.executable, str(WORKER), str(r), str(world),
                               str(tmp / "store"), str(tmp)], stdout=logs[r],
                              stderr=subprocess.STDOUT, env=env) for r in range(world)]
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while None in (codes := [p.poll() for p in procs]):
            if time.monotonic() > deadline:
                break
            if any(codes):   # one failed: give the others a moment to report, then stop
                deadline = min(deadline, time.monotonic() + 2.0)
            time.sleep(0.1)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    report = []
    for r, (p, log) in enumerate(zip(procs, logs)):
        log.seek(0)
        report.append(f"--- rank {r} (exit {p.returncode}) ---\n{log.read()[-6000:]}")
        log.close()
    if any(p.returncode != 0 for p in procs):
        pytest.fail("distributed worker failed or timed out after "
                    f"{TIMEOUT_S:.0f} s:\n" + "\n".join(report), pytrace=False)
    return [torch.load(tmp / f"rank{r}.pt", weights_only=False) for r in range(world)]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> list[dict]:
    return _launch(2, tmp_path_factory.mktemp("dist"))


def _single(scenario: str) -> dict:
    """Single-process operators on the union of the shards, batched differently."""
    x, y = worker.make_data()
    return worker.operators(hb, scenario, [(x[:10], y[:10]), (x[10:], y[10:])])


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("scenario", ["ragged", "empty"])
@pytest.mark.parametrize("name", ["hessian", "ggn", "fisher", "gradient_covariance"])
def test_matches_single_process_operator_on_the_union(ranks, scenario, name):
    ref = _single(scenario)[name]
    dense = ref.dense()
    v = torch.linspace(-1, 1, 43, dtype=torch.float64)
    for res in ranks:
        assert res[f"{scenario}/num_params"] == ref.num_params == 43
        assert _rel(res[f"{scenario}/{name}/dense"], dense) < 1e-10
        assert _rel(res[f"{scenario}/{name}/matvec"], dense @ v) < 1e-10
        assert _rel(res[f"{scenario}/{name}/scipy"], dense @ v) < 1e-10
    assert torch.equal(ranks[0][f"{scenario}/{name}/dense"], ranks[1][f"{scenario}/{name}/dense"])


def test_gradient_covariance_is_centred_over_all_ranks(ranks):
    ref = _single("ragged")["gradient_covariance"]
    for res in ranks:
        assert _rel(res["ragged/mean_gradient"], ref.mean_gradient) < 1e-10


def test_algorithms_bit_identical_across_ranks_and_match_single_process(ranks):
    a, b = ranks
    for key in ("eigsh", "trace", "density", "spectrum"):
        pair = (a[key], b[key]) if isinstance(a[key], tuple) else ((a[key],), (b[key],))
        for x, y in zip(*pair):
            assert np.array_equal(np.asarray(x), np.asarray(y)), key
    x, y = worker.make_data()
    H = worker.operators(hb, "ragged", [(x, y)])["hessian"]
    ref = hb.eigsh(H, k=3, tol=1e-8, seed=0)
    assert abs(a["eigsh"][0] - ref.values).max() < 1e-8 * abs(ref.values).max()
    exact = float(torch.trace(H.dense()))
    assert abs(a["trace"][0] - exact) <= 1e-8 * abs(exact) + 5 * a["trace"][1]


def test_parameter_mismatch_names_the_rank(ranks):
    for res in ranks:
        msg = res["mismatch"]
        assert msg is not None and msg.startswith("ValueError")
        assert "rank(s) [1]" in msg and "parameter values" in msg


def test_a_failing_product_raises_on_every_rank(ranks):
    assert "ValueError" in ranks[0]["product_failure"] and "batch 1" in ranks[0]["product_failure"]
    assert "RuntimeError" in ranks[1]["product_failure"]
    assert "rank(s) [0]" in ranks[1]["product_failure"]
    # the group is still usable afterwards
    torch.testing.assert_close(ranks[0]["after_failure"], ranks[1]["after_failure"],
                               rtol=0, atol=0)


def test_without_a_process_group_says_what_to_do():
    model, loss = worker.make_model(), worker.loss_for("ragged")
    with pytest.raises(RuntimeError, match="init_process_group"):
        hd.hessian(model, loss, worker.make_data())


def test_example_runs_as_one_rank():
    out = subprocess.run([sys.executable, "-m", "hessbench.examples.distributed_spectrum",
                          "--samples", "200", "-k", "2"], capture_output=True, text=True,
                         timeout=TIMEOUT_S, env={**os.environ, "OMP_NUM_THREADS": "1"},
                         cwd=WORKER.parents[1])
    assert out.returncode == 0, out.stderr[-4000:]
    assert "top-2 eigenvalues" in out.stdout and "identical on every rank: True" in out.stdout
