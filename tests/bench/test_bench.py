"""Benchmark tooling: gate logic on synthetic baselines, the PyHessian HVP counter, the
README-section rewriter, the closed-form trace figures, the CLI's exit codes, and the asv
suites' agreement with the gate and the implementations."""
from __future__ import annotations

import itertools
import json
import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from hessbench.bench import gate as g
from hessbench.bench import measure, specs
from hessbench.bench.figures import (Reference, density_w1, eig_error, hutchinson_matvecs_for,
                                     hutchinson_rmse, trace_grid)
from hessbench.bench.measure import CompareRow, crash_note
from hessbench.bench.peers import (IMPLEMENTATIONS, PyHessian, count_hvps, pyhessian_hvp_fn,
                                   seeded_call)
from hessbench.bench.report import END_MARKER, START_MARKER, compare_markdown, replace_section
from hessbench.bench.timing import time_ratio
from hessbench.cli import main
from hessbench.results import DensityResult

# ------------------------------------------------------------------ gate logic

BASE = {"track": {"mlp.eigsh_top5_matvecs": 21.0, "mlp.eigsh_top5_rel_err": 1e-10,
                  "mlp.pyhessian_top5_hvps": 103.0},
        "ratios": {"resnet18.hvp_over_grad": 2.0, "mlp.hvp_over_grad": 2.0}}


def _status(track=None, ratios=None, base=BASE) -> dict[str, str]:
    t = {**base["track"], **(track or {})}
    r = {**base["ratios"], **(ratios or {})}
    return {c.name: c.status for c in g.compare(t, r, base)}


def test_gate_passes_on_identical_figures():
    assert set(_status().values()) == {"pass", "info"}


def test_gate_fails_on_one_more_matvec_and_reports_fewer_as_improved():
    assert _status({"mlp.eigsh_top5_matvecs": 22.0})["mlp.eigsh_top5_matvecs"] == "fail"
    assert _status({"mlp.eigsh_top5_matvecs": 20.0})["mlp.eigsh_top5_matvecs"] == "improved"


def test_gate_error_tolerance_is_rtol_plus_atol():
    spec = specs.TRACK["mlp.eigsh_top5_rel_err"]
    limit = 1e-10 * (1 + spec.rtol) + spec.atol
    ok = _status({"mlp.eigsh_top5_rel_err": limit * (1 - 1e-9)})
    bad = _status({"mlp.eigsh_top5_rel_err": limit * (1 + 1e-6)})
    assert ok["mlp.eigsh_top5_rel_err"] == "pass"
    assert bad["mlp.eigsh_top5_rel_err"] == "fail"


def test_gate_nan_fails_and_infinite_baseline_matches_infinite_figure():
    assert _status({"mlp.eigsh_top5_rel_err": math.nan})["mlp.eigsh_top5_rel_err"] == "fail"
    base = {"track": {"mlp.trace_hutchpp_matvecs_1pct": math.inf}, "ratios": {}}
    assert _status(base=base)["mlp.trace_hutchpp_matvecs_1pct"] == "pass"


@pytest.mark.parametrize("factor,expected", [(1.49, "pass"), (1.51, "fail"), (0.5, "improved")])
def test_gate_ratio_margin(factor, expected):
    now = 2.0 * factor
    assert specs.RATIO_MARGIN == 0.5
    assert _status(ratios={"resnet18.hvp_over_grad": now})["resnet18.hvp_over_grad"] == expected


def test_gate_peer_figures_and_ungated_ratios_never_fail():
    worse = _status({"mlp.pyhessian_top5_hvps": 1000.0}, {"mlp.hvp_over_grad": 100.0})
    assert worse["mlp.pyhessian_top5_hvps"] == worse["mlp.hvp_over_grad"] == "info"
    assert not specs.RATIO["mlp.hvp_over_grad"].gated
    assert specs.RATIO["resnet18.hvp_over_grad"].gated


def test_gate_missing_figure_fails_new_figure_passes():
    checks = g.compare({"mlp.eigsh_top1_matvecs": 13.0}, {"cnn.hvp_over_grad": 3.0}, BASE)
    status = {c.name: c.status for c in checks}
    assert status["mlp.eigsh_top5_matvecs"] == "missing"
    assert status["resnet18.hvp_over_grad"] == "missing"
    assert status["mlp.hvp_over_grad"] == "info"           # ungated: missing is no failure
    assert status["mlp.eigsh_top1_matvecs"] == "new"
    assert status["cnn.hvp_over_grad"] == "new"
    assert [c.name for c in checks if c.failed] == ["mlp.eigsh_top5_matvecs",
                                                    "mlp.eigsh_top5_rel_err",
                                                    "resnet18.hvp_over_grad"]


def test_targets():
    track = {"mlp.eigsh_top5_matvecs": 103.0, "mlp.pyhessian_top5_hvps": 103.0,
             "mlp.eigsh_top5_rel_err": 1e-7, "mlp.trace_hutchpp_matvecs_1pct": 100.0,
             "mlp.trace_hutchinson_matvecs_1pct": 300.0}
    status = {c.name: c.status for c in g.target_checks(track, {"resnet18.hvp_over_grad": 3.01})}
    assert status == {"target.top5_matvecs": "fail",  # "fewer than", so equal misses
                      "target.top5_rel_err": "pass", "target.hutchpp_1pct": "pass",
                      "target.resnet18_hvp": "fail"}


def test_baseline_roundtrip_keeps_ints_and_infinity(tmp_path):
    path = tmp_path / "sub" / "baseline.json"
    g.write_baseline(path, {"a": 21.0, "b": 1.5e-10, "c": math.inf}, {"r": 2.5}, {"threads": 2})
    raw = json.loads(path.read_text())
    assert raw["track"] == {"a": 21, "b": 1.5e-10, "c": "inf"}
    data = g.load_baseline(path)
    assert data["track"] == {"a": 21.0, "b": 1.5e-10, "c": math.inf}
    assert data["ratios"] == {"r": 2.5} and data["meta"] == {"threads": 2}


def test_baseline_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="--update"):
        g.load_baseline(tmp_path / "absent.json")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"track": [1, 2]}))
    with pytest.raises(ValueError, match="not a hessbench baseline"):
        g.load_baseline(bad)


@pytest.fixture
def fake_measurements(monkeypatch):
    """The CLI's gate with instant synthetic measurements (the logic, not the timing)."""
    figures = {"track": dict(BASE["track"]), "ratios": dict(BASE["ratios"])}
    monkeypatch.setattr(measure, "measure_track",
                        lambda device, scan=False: dict(figures["track"]))
    monkeypatch.setattr(measure, "measure_ratios",
                        lambda device, repeats: dict(figures["ratios"]))
    return figures


def test_cli_gate_update_then_pass_then_fail(tmp_path, fake_measurements, capsys):
    path = tmp_path / "baseline.json"
    assert main(["bench", "gate", "--baseline", str(path)]) == 2      # no baseline yet
    assert main(["bench", "gate", "--baseline", str(path), "--update"]) == 0
    assert main(["bench", "gate", "--baseline", str(path)]) == 0
    fake_measurements["ratios"]["resnet18.hvp_over_grad"] = 3.5        # 1.75x the baseline
    assert main(["bench", "gate", "--baseline", str(path)]) == 1
    assert "GATE FAILED" in capsys.readouterr().out


BAD_BASELINES = {  # what the file holds -> words of the error (which names the file)
    "empty": (b'{"meta": {}, "track": {}, "ratios": {}}', "holds no figures"),
    "not JSON": (b'{"track": {"a": 1}', "not valid JSON"),
    "not UTF-8": (b'\xff\xfe{"track"', "not valid JSON"),
    "a list": (b"[1, 2]", "not a hessbench baseline"),
    "meta not an object": (b'{"meta": 3, "track": {"a": 1}, "ratios": {}}',
                           "not a hessbench baseline"),
    "null figure": (b'{"track": {"a": null}, "ratios": {}}', "track.a: None is not a number"),
    "text figure": (b'{"track": {}, "ratios": {"r": "fast"}}', "ratios.r: 'fast' is not a number"),
    "bool figure": (b'{"track": {"a": true}, "ratios": {}}', "track.a: True is not a number"),
}


@pytest.mark.parametrize("content, words", BAD_BASELINES.values(), ids=BAD_BASELINES)
def test_bad_baselines_are_errors_naming_the_file(tmp_path, content, words):
    path = tmp_path / "baseline.json"
    path.write_bytes(content)
    with pytest.raises(ValueError) as info:
        g.load_baseline(path)
    assert str(info.value).startswith(f"{path}: ") and words in str(info.value)
    assert "--update" in str(info.value)


@pytest.mark.parametrize("content", [c for c, _ in BAD_BASELINES.values()], ids=BAD_BASELINES)
def test_cli_gate_fails_on_a_bad_baseline_before_measuring(tmp_path, monkeypatch, capsys,
                                                           content):
    def never(*args, **kwargs):
        raise AssertionError("measured before reading the baseline")

    monkeypatch.setattr(measure, "measure_track", never)
    monkeypatch.setattr(measure, "measure_ratios", never)
    path = tmp_path / "baseline.json"
    path.write_bytes(content)
    assert main(["bench", "gate", "--baseline", str(path)]) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert f"error: {path}: " in out and "gate passed" not in out


# ------------------------------------------------------------------ PyHessian HVP counter


def _tiny_pyhessian(loader: bool):
    from pyhessian import hessian

    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(12, 3, generator=gen), torch.randint(0, 2, (12,), generator=gen)
    model = nn.Linear(3, 2)
    with warnings.catch_warnings():   # PyHessian's backward(create_graph=True)
        warnings.simplefilter("ignore", UserWarning)
        if loader:
            return hessian(model, nn.CrossEntropyLoss(),
                           dataloader=[(x[:5], y[:5]), (x[5:], y[5:])], cuda=False)
        return hessian(model, nn.CrossEntropyLoss(), data=(x, y), cuda=False)


@pytest.mark.parametrize("loader", [False, True])
def test_count_hvps_counts_every_product(loader):
    h = _tiny_pyhessian(loader)
    with count_hvps() as counter:   # tol < 0: PyHessian never stops early
        seeded_call(h, "eigenvalues", 0, top_n=2, maxIter=3, tol=-1.0)()
        assert counter.count == 6
        seeded_call(h, "trace", 0, maxIter=4, tol=-1.0)()
        assert counter.count == 10
        pyhessian_hvp_fn(h)()
        assert counter.count == (11 if loader else 10)  # the utils function is not patched


def test_count_hvps_restores_pyhessian_after_an_error():
    import importlib

    mod = importlib.import_module("pyhessian.hessian")
    single, loader = mod.hessian_vector_product, mod.hessian.dataloader_hv_product
    with pytest.raises(RuntimeError, match="boom"), count_hvps():
        raise RuntimeError("boom")
    assert mod.hessian_vector_product is single
    assert mod.hessian.dataloader_hv_product is loader


def test_seeded_call_is_reproducible_and_leaves_the_global_rng_alone():
    h = _tiny_pyhessian(False)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = seeded_call(h, "trace", 7, maxIter=5, tol=-1.0)()
    b = seeded_call(h, "trace", 7, maxIter=5, tol=-1.0)()
    assert a == b
    assert torch.equal(torch.get_rng_state(), before)


# ------------------------------------------------------------------ README section rewriter

README = f"# title\n\nintro\n\n{START_MARKER}\nold table\n{END_MARKER}\n\nrest\n"


def test_replace_section_replaces_only_between_markers_and_is_idempotent():
    once = replace_section(README, "| a | b |\n")
    assert once == f"# title\n\nintro\n\n{START_MARKER}\n| a | b |\n{END_MARKER}\n\nrest\n"
    assert replace_section(once, "| a | b |") == once


@pytest.mark.parametrize("text,match", [
    ("no markers", "exactly one"),
    (README + START_MARKER, "exactly one"),
    (f"{END_MARKER}\n{START_MARKER}", "before"),
])
def test_replace_section_rejects_bad_markers(text, match):
    with pytest.raises(ValueError, match=match):
        replace_section(text, "x")


def test_crash_note_keeps_the_exception_and_its_first_sentence():
    error = ("RuntimeError: This function was deprecated since version 1.9 and is now removed. "
             "`torch.linalg.eig` returns complex tensors.\nL, _ = torch.eig(A) ...")
    assert crash_note(error) == ("crashes: RuntimeError: This function was deprecated since "
                             "version 1.9 and is now removed.")


def test_compare_markdown_escapes_pipes_and_dashes_missing_cells():
    md = compare_markdown([CompareRow("m", top1_err=1e-3, matvecs=7, seconds=0.5, note="a|b")])
    header, rule, row = md.splitlines()
    assert header.count("|") == rule.count("|") == 9
    assert row == "| m | 1.00e-03 | — | — | — | 7 | 0.500 | a\\|b |"


def test_perf_table_formats_measured_timings():
    from hessbench.bench.measure import DeviceTimings, PyHessianRun, SolverTimings, WorkloadTimings
    from hessbench.bench.report import perf_table

    solvers = SolverTimings(0.1124, 21, PyHessianRun([1.0], 103, 0.4357), 0.2275, 3.0, 16.8)
    mlp = WorkloadTimings("mlp", 4270, 0.0021, 0.0039, 16, 0.0018, 0.0031, 10, 0.0527, solvers)
    big = WorkloadTimings("resnet18", 11181642, 0.4137, 0.9374, 4, 0.8925, 0.7469, 4, 3.21,
                          None)
    meta = {"torch": "2.x", "date": "today", "loadavg_1min": 0.5}
    lines = perf_table([DeviceTimings("CPU, 2 cores, 1 torch threads", meta, 7, [mlp, big])]
                       ).splitlines()
    assert lines[2] == ("**CPU, 2 cores, 1 torch threads** — torch 2.x, today, 1-min load "
                        "average 0.5 at the start; medians of 7 calls (ResNet-18: 3), float32.")
    rows = {line.split(" | ")[0]: line for line in lines[4:]}
    assert rows["| operation"] == ("| operation | mlp (4,270 params) | resnet18 (11,181,642 "
                                   "params) |")
    assert rows["| HVP / gradient"] == "| HVP / gradient | 1.86x | 2.27x |"
    assert rows["| HVP in a block, per vector"] == ("| HVP in a block, per vector | 1.8 ms (block "
                                                    "16) | 892.5 ms (block 4) |")
    assert rows["| HVP streamed, per call"].endswith("| 3.21 s (4 batches) |")
    assert rows["| top-5 eigenvalues, hb.eigsh tol 1e-6"] == (
        "| top-5 eigenvalues, hb.eigsh tol 1e-6 | 112.4 ms (21 matvecs) | — |")
    assert rows["| top-5 eigenvalues, PyHessian"].startswith("| top-5 eigenvalues, PyHessian | "
                                                             "435.7 ms (103 HVPs)")


# ------------------------------------------------------------------ figures


def _reference(H: np.ndarray) -> Reference:
    Ht = torch.as_tensor(H, dtype=torch.float64)
    return Reference(Ht, np.linalg.eigvalsh(H), float(np.trace(H)), 0.0)


def test_hutchinson_rmse_matches_enumeration_of_all_rademacher_probes():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((5, 5))
    H = A + A.T + 10 * np.eye(5)
    ref = _reference(H)
    quad = [np.array(z) @ H @ np.array(z) for z in itertools.product([-1.0, 1.0], repeat=5)]
    exact_var = np.var(quad)   # population variance over all 32 equally likely probes
    for m in (1, 3, 10):
        assert hutchinson_rmse(ref, m) == pytest.approx(np.sqrt(exact_var / m) / ref.trace,
                                                        rel=1e-12)
    m = hutchinson_matvecs_for(ref, 0.05)
    assert hutchinson_rmse(ref, m) <= 0.05 < hutchinson_rmse(ref, m - 1)


def test_trace_grid_and_eig_error():
    grid = trace_grid(100)
    assert grid[:5] == [6, 9, 12, 15, 18] and grid[-1] <= 100
    assert all(b > a for a, b in zip(grid, grid[1:]))
    ref = _reference(np.diag([1.0, 2.0, 4.0]))
    assert eig_error([4.0, 2.0], ref) == 0.0
    assert eig_error([2.2, 4.0], ref) == pytest.approx(0.1)   # sorted before comparing


def test_density_w1_is_zero_for_the_exact_measure_and_scales_with_a_shift():
    ref = _reference(np.diag([0.0, 1.0, 2.0, 4.0]))
    exact = DensityResult(nodes=ref.eigenvalues[None, :], weights=np.full((1, 4), 0.25),
                          matvecs=0, seed=0)
    assert density_w1(exact, ref) == pytest.approx(0.0, abs=1e-15)
    shifted = DensityResult(nodes=ref.eigenvalues[None, :] + 0.4, weights=exact.weights,
                            matvecs=0, seed=0)
    assert density_w1(shifted, ref) == pytest.approx(0.4 / 4.0)


def test_time_ratio_validates_and_is_positive():
    ratio, a, b = time_ratio(lambda: sum(range(2000)), lambda: sum(range(10)), repeats=3)
    assert ratio > 0 and len(a.samples) == len(b.samples) == 3
    with pytest.raises(ValueError, match="repeats"):
        time_ratio(lambda: None, lambda: None, repeats=0)


def _suite(monkeypatch, name: str):
    import importlib
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2]))
    return importlib.import_module(f"suites.{name}")


def test_asv_track_suite_mirrors_the_gate_figures(monkeypatch):
    track = _suite(monkeypatch, "track")
    assert track.measure_track is measure.measure_track        # the gate's measurements
    assert track.measure_ratios is measure.measure_ratios
    figures = {n for n in dir(track.Figures) if n.startswith("track_")}
    ratios = {n for n in dir(track.Ratios) if n.startswith("track_")}
    assert figures == {"track_" + k.split(".", 1)[1] for k in specs.TRACK}
    assert ratios == {"track_" + k.replace(".", "_") for k in specs.RATIO}
    assert track.Figures().track_eigsh_top5_matvecs({"mlp.eigsh_top5_matvecs": 21}) == 21


def test_asv_operation_suites_compare_every_implementation(monkeypatch):
    common = _suite(monkeypatch, "_common")
    classes = [c for name in ("hvp", "eigen", "trace", "density", "spectrum")
               for c in vars(_suite(monkeypatch, name)).values()
               if isinstance(c, type) and issubclass(c, common.Operation)
               and c not in (common.Operation, common.Solver)]
    assert {c.__name__ for c in classes} == {"Hvp", "HvpBlock", "TopEigenvalues", "Trace",
                                             "Density", "ExactSpectrum"}
    for c in classes:
        assert c.param_names[:2] == ["impl", "workload"]
        assert c.params[0] == list(IMPLEMENTATIONS) == ["hessbench", "pyhessian", "curvlinops",
                                                        "eigenthings"]
        assert len(c.params) == len(c.param_names)


def test_missing_operations_and_implementations_skip(monkeypatch):
    common = _suite(monkeypatch, "_common")
    for operation in (lambda p: p.hvp_block(None, 4), lambda p: p.spectrum(None)):
        with pytest.raises(NotImplementedError, match="pyhessian has no"):
            operation(PyHessian())
    for name in IMPLEMENTATIONS:
        if name == "hessbench":
            continue
        monkeypatch.setattr(IMPLEMENTATIONS[name], "requires", "no_such_module_for_hessbench")
        with pytest.raises(NotImplementedError, match="not installed"):
            common.implementation(name)


# ------------------------------------------------------------------ streamed and precision targets


def test_streamed_and_precision_targets():
    track = {"mlp.eigsh_f32_below_floor_converged": 0.0, "mlp.eigsh_f64_tight_unconverged": 0.0,
             "mlp.eigsh_f64_tight_rel_err": 1e-14}
    ratios = {"mlp.streamed_hvp_over_pyhessian": specs.STREAM_PARITY,
              "mlp.loader_hvp_over_pyhessian": specs.STREAM_PARITY * 1.01}
    status = {c.name: c.status for c in g.target_checks(track, ratios)}
    assert status == {"target.streamed_hvp": "pass", "target.loader_hvp": "fail",
                      "target.float32_honest": "pass", "target.float64_tight": "pass",
                      "target.float64_tight_err": "pass"}
    bad = {"mlp.eigsh_f32_below_floor_converged": 1.0, "mlp.eigsh_f64_tight_unconverged": 1.0,
           "mlp.eigsh_f64_tight_rel_err": 2e-10}
    assert {c.status for c in g.target_checks(bad, {})} == {"fail"}


def test_streamed_ratios_cover_both_data_sources_against_the_same_data():
    from hessbench.bench.workloads import get_workload

    calls = []

    def ratio(num, den):   # each side once: the figures' plumbing, not their timing
        num(), den()
        calls.append((num, den))
        return 1.0

    w = get_workload("mlp-init")
    out = measure._streamed_ratios(w, ratio)
    assert set(out) == {f"mlp.{k}" for k in (
        "streamed_hvp_over_pyhessian", "loader_hvp_over_pyhessian",
        "streamed_hvp_over_batch_grads", "loader_hvp_over_batch_grads",
        "kept_list_hvp_over_batch_grads", "double_backward_over_batch_grads",
        "scratch_hvp_over_double_backward")}
    assert set(out) <= set(specs.RATIO)
    gated = {k for k in out if k.endswith("pyhessian")} | {
        "mlp.scratch_hvp_over_double_backward"}
    assert {k for k in out if specs.RATIO[k].gated} == gated


def test_double_backward_reference_is_the_hvp_with_the_benchmark_vector():
    """The gate's reference HVP (plain double backward) is H v for the vector every
    implementation is timed on: on the whole set and summed over a list of batches."""
    from hessbench.bench.impls import random_block
    from hessbench.bench.workloads import double_backward_fn, get_workload

    w = get_workload("mlp-init")
    op = w.hessian()
    want = op.matvec(random_block(op.num_params, 1, op.dtype, op.device)[:, 0])
    whole = double_backward_fn(w)()
    assert len(whole) == 1
    torch.testing.assert_close(torch.cat([t.reshape(-1) for t in whole[0]]), want,
                               rtol=1e-4, atol=1e-6)
    listed = w.data(len(w.inputs) // 4)
    per_batch = double_backward_fn(w, listed)()
    mean = sum(torch.cat([t.reshape(-1) for t in h]) for h in per_batch) / len(per_batch)
    torch.testing.assert_close(mean, want, rtol=1e-4, atol=1e-6)


def test_cli_compare_prints_progress_fits_100_columns_and_writes_the_notes(
        tmp_path, monkeypatch, capsys):
    note = "a long note that would widen the terminal table " * 3

    def fake_rows(workload, device, progress=None):
        for i, section in enumerate(measure.COMPARE_SECTIONS):
            progress(i, section)
        return [CompareRow("hessbench eigsh k=5, tol 1e-6 (float64), a long method name",
                           1e-13, 2e-13, matvecs=21, seconds=0.1, note=note)]

    monkeypatch.setattr(measure, "compare_rows", fake_rows)
    monkeypatch.setenv("COLUMNS", "160")
    report = tmp_path / "cmp.md"
    assert main(["bench", "compare", "--report", str(report)]) == 0
    out = capsys.readouterr().out
    total = len(measure.COMPARE_SECTIONS)
    assert all(f"[{i + 1}/{total}] {s}" in out for i, s in enumerate(measure.COMPARE_SECTIONS))
    assert "left (extrapolated)" in out
    assert max(len(line) for line in out.splitlines()) <= 100
    assert note.strip() not in out and note.strip() in report.read_text()


# ------------------------------------------------------------------ scaling figure


def test_measure_scaling_covers_both_axes_for_every_installed_implementation(monkeypatch):
    from hessbench.bench import scaling

    def once(num, den, **kwargs):   # each side once: the plumbing, not the timing
        num(), den()
        return 2.0, None, None

    monkeypatch.setattr(scaling, "time_ratio", once)
    points = scaling.measure_scaling(workloads=("mlp-init",), sizes=(200, 400), batch_size=100)
    installed = [n for n, c in IMPLEMENTATIONS.items() if c.available()]
    assert {p.impl for p in points} == set(installed)
    assert sorted({(p.axis, p.x) for p in points}) == [("params", 4270), ("samples", 200),
                                                       ("samples", 400)]
    assert all(p.ratio == 2.0 for p in points)


def test_plot_scaling_writes_a_png(tmp_path):
    from hessbench.bench.scaling import ScalingPoint, plot_scaling

    points = [ScalingPoint(i, a, x, r) for i, a, x, r in [
        ("hessbench", "params", 1954, 1.2), ("hessbench", "params", 4270, 1.9),
        ("pyhessian", "params", 4270, 1.5), ("hessbench", "samples", 2000, 3.0)]]
    path = plot_scaling(points, tmp_path / "sub" / "scaling.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
