"""Every measurement of the benchmark tooling, in one place: the gate's deterministic
figures (:func:`measure_track`) and same-run time ratios (:func:`measure_ratios`), the
hessbench-vs-PyHessian comparison (:func:`compare_rows`) and the timings of the README
table (:func:`measure_table`). Judging is :mod:`hessbench.bench.gate`'s, formatting
:mod:`hessbench.bench.report`'s.

Accuracy is measured against the exact spectrum of the float64 operator
(:mod:`hessbench.bench.figures`); time ratios are the fastest of interleaved samples
and table timings medians of repeated calls in one process
(:mod:`hessbench.bench.timing`), float32 unless a figure says float64.
"""
from __future__ import annotations

import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

import hessbench as hb
from hessbench.bench.figures import (Reference, density_w1, eig_error, exact_reference,
                                     hutchinson_matvecs_for, hutchinson_rmse,
                                     hutchpp_matvecs_for, hutchpp_rmse)
from hessbench.bench.impls import Call, Hessbench, density_slq, eigsh_top
from hessbench.bench.peers import (IMPLEMENTATIONS, PyHessian, PyHessianRun, pyhessian_density,
                                   pyhessian_eigenvalues, pyhessian_hessian, pyhessian_trace)
from hessbench.bench.specs import (BLOCK, FLOAT32_TOL, HEAVY, HEAVY_BLOCK, STREAM_BATCHES,
                                   TIGHT_TOL, TOP_K, TRACE_BUDGET, TRACE_SEEDS)
from hessbench.bench.timing import time_call, time_ratio
from hessbench.bench.workloads import Workload, double_backward_fn, get_workload, gradient_fn

__all__ = ["run_meta", "measure_track", "measure_ratios", "CompareRow", "crash_note",
           "compare_rows", "COMPARE_SECTIONS", "SolverTimings", "WorkloadTimings", "DeviceTimings",
           "measure_table"]

HB, PYH = Hessbench(), PyHessian()


def run_meta(threads: int | None = None) -> dict[str, object]:
    """Where and how figures were measured (stored with a baseline, printed by the gate)."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
    return {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "torch": torch.__version__,
            "hessbench": hb.__version__, "python": platform.python_version(),
            "machine": platform.machine(), "cpus": os.cpu_count(),
            "threads": threads or torch.get_num_threads(), "loadavg_1min": round(load, 2)}


# ------------------------------------------------------------------ the gate's figures


def measure_track(device: torch.device | str = "cpu", scan: bool = False) -> dict[str, float]:
    """The :data:`~hessbench.bench.specs.TRACK` figures on the ``mlp`` workload (float64
    operator); the Hutch++ matvecs-for-1% scan (minutes on a CPU) only with ``scan``."""
    w = get_workload("mlp", device)
    op = w.hessian(dtype=torch.float64)
    ref = exact_reference(op)
    figs: dict[str, float] = {}
    for k in TOP_K:
        r = eigsh_top(op, k)
        figs[f"mlp.eigsh_top{k}_matvecs"] = r.matvecs
        figs[f"mlp.eigsh_top{k}_rel_err"] = eig_error(r.values, ref)
    figs.update(_precision_figures(w, op, ref))
    figs["mlp.trace_hutchpp_rmse_100"] = hutchpp_rmse(ref, TRACE_BUDGET, TRACE_SEEDS)
    if scan:
        hpp = hutchpp_matvecs_for(ref, 0.01, TRACE_SEEDS)
        figs["mlp.trace_hutchpp_matvecs_1pct"] = math.inf if hpp is None else hpp
    figs["mlp.trace_hutchinson_matvecs_1pct"] = hutchinson_matvecs_for(ref, 0.01)
    figs["mlp.trace_hutchinson_rmse_100"] = hutchinson_rmse(ref, TRACE_BUDGET)
    figs["mlp.density_w1"] = density_w1(density_slq(op), ref)
    pyh = pyhessian_eigenvalues(w, 5)
    figs["mlp.pyhessian_top5_hvps"] = pyh.hvps
    figs["mlp.pyhessian_top5_rel_err"] = math.nan if pyh.error else eig_error(pyh.value, ref)
    return figs


def _precision_figures(w: Workload, op64: hb.CurvatureOperator,
                       ref: Reference) -> dict[str, float]:
    """Which dtype gives which accuracy: float32 top-5 at a tol below its noise floor must
    report converged=False; float64 at :data:`TIGHT_TOL` must converge, to that error."""
    r32 = eigsh_top(w.hessian(), 5, FLOAT32_TOL)
    r64 = eigsh_top(op64, 5, TIGHT_TOL)
    return {"mlp.eigsh_f32_below_floor_converged": float(r32.converged),
            "mlp.eigsh_f32_noise_floor": r32.noise_floor / float(abs(r32.values).max()),
            "mlp.eigsh_f64_tight_unconverged": float(not r64.converged),
            "mlp.eigsh_f64_tight_matvecs": r64.matvecs,
            "mlp.eigsh_f64_tight_rel_err": eig_error(r64.values, ref)}


def _streamed_ratios(w: Workload, ratio: Callable[[Call, Call], float]) -> dict[str, float]:
    """Streamed HVPs over :data:`STREAM_BATCHES` batches, as a list and as a DataLoader,
    against PyHessian's ``dataloader_hv_product`` and the batch gradients on the same data;
    the list with ``keep_graph=True``; plain double backward per batch against the batch
    gradients (the floor of a product that rebuilds its graphs); and the from-scratch HVP
    (one batch, ``keep_graph=False``) against plain double backward."""
    size = len(w.inputs) // STREAM_BATCHES
    out = {}
    for kind, data in (("streamed", w.data(size)), ("loader", w.loader(size))):
        hvp = HB.hvp(hb.hessian(w.model, w.loss_fn, data))
        out[f"mlp.{kind}_hvp_over_pyhessian"] = ratio(
            hvp, PYH.hvp(pyhessian_hessian(w, size, loader=kind == "loader")))
        out[f"mlp.{kind}_hvp_over_batch_grads"] = ratio(hvp, gradient_fn(w, data))
    listed = w.data(size)
    kept = HB.hvp(hb.hessian(w.model, w.loss_fn, listed, keep_graph=True))
    out["mlp.kept_list_hvp_over_batch_grads"] = ratio(kept, gradient_fn(w, listed))
    out["mlp.double_backward_over_batch_grads"] = ratio(double_backward_fn(w, listed),
                                                        gradient_fn(w, listed))
    out["mlp.scratch_hvp_over_double_backward"] = ratio(HB.hvp(w.hessian(keep_graph=False)),
                                                        double_backward_fn(w))
    return out


def measure_ratios(device: torch.device | str = "cpu", repeats: int = 7,
                   workloads: tuple[str, ...] = ("mlp", "cnn", "resnet18")
                   ) -> dict[str, float]:
    """The :data:`~hessbench.bench.specs.RATIO` figures of the selected workloads
    (float32, default dtype), each the ratio of the fastest of ``repeats`` interleaved
    samples."""
    out: dict[str, float] = {}

    def ratio(num: Callable[[], object], den: Callable[[], object]) -> float:
        return time_ratio(num, den, repeats=repeats, device=device, stat="min")[0]

    for name in workloads:
        w = get_workload(name, device)
        op = HB.prepare(w)
        hvp = HB.hvp(op)
        out[f"{name}.hvp_over_grad"] = ratio(hvp, gradient_fn(w))
        if name == "cnn":
            continue
        h = PYH.prepare(w)
        out[f"{name}.hvp_over_pyhessian_hvp"] = ratio(hvp, PYH.hvp(h))
        if name != "mlp":
            continue
        out["mlp.block_hvp_per_vector_over_hvp"] = ratio(HB.hvp_block(op, BLOCK), hvp) / BLOCK
        out["mlp.eigsh_top5_over_pyhessian_top5"] = ratio(HB.top_eigenvalues(op, 5),
                                                          PYH.top_eigenvalues(h, 5))
        out.update(_streamed_ratios(w, ratio))
    return out


# ------------------------------------------------------------------ hessbench vs PyHessian


@dataclass(frozen=True)
class CompareRow:
    """One method on one workload: errors against the exact spectrum, cost, note."""

    method: str
    top1_err: float | None = None
    top5_err: float | None = None
    trace_err: float | None = None
    density_err: float | None = None
    matvecs: int | None = None
    seconds: float | None = None
    note: str = ""


def crash_note(error: str) -> str:
    """'crashes: <exception type>: <its first sentence>'."""
    return "crashes: " + error.splitlines()[0].split(". ")[0].rstrip(".") + "."


def _timed(fn: Callable[[], object]) -> tuple[object, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def _eig_rows(w: Workload, ref: Reference, op64: hb.CurvatureOperator,
              op32: hb.CurvatureOperator) -> list[CompareRow]:
    rows = []
    for k in (1, 5):
        for label, op in (("float64", op64), ("float32", op32)):
            r, s = _timed(HB.top_eigenvalues(op, k))
            rows.append(CompareRow(
                f"hessbench eigsh k={k}, tol 1e-6 ({label})", eig_error(r.values[:1], ref),
                eig_error(r.values, ref) if k == 5 else None, matvecs=r.matvecs, seconds=s,
                note="" if r.converged else "NOT converged"))
        p = pyhessian_eigenvalues(w, k)
        if p.error:
            rows.append(CompareRow(f"PyHessian eigenvalues(top_n={k})", matvecs=p.hvps,
                                   seconds=p.seconds, note=crash_note(p.error)))
        else:
            top = sorted(p.value, reverse=True)
            rows.append(CompareRow(f"PyHessian eigenvalues(top_n={k}) (float32)",
                                   eig_error(top[:1], ref), eig_error(top, ref) if k == 5 else None,
                                   matvecs=p.hvps, seconds=p.seconds,
                                   note="power iteration, stops on eigenvalue change < 1e-3"))
    return rows


def _trace_rows(w: Workload, ref: Reference, op64: hb.CurvatureOperator) -> list[CompareRow]:
    rel = lambda value: abs(value - ref.trace) / abs(ref.trace)  # noqa: E731
    p = pyhessian_trace(w)
    rows = [CompareRow("PyHessian trace() (float32)", trace_err=None if p.error else rel(p.value),
                       matvecs=p.hvps, seconds=p.seconds,
                       note=crash_note(p.error) if p.error else
                       "Hutchinson, stops on running-mean change < 1e-3, no error bar")]
    budget = max(p.hvps, 3)
    for method in ("hutchinson", "hutch++"):
        t, s = _timed(lambda m=method: hb.trace(op64, m, num_matvecs=budget, seed=0))
        rows.append(CompareRow(f"hessbench trace {method}, {budget} matvecs (= PyHessian's, "
                               "float64)",
                               trace_err=rel(t.value), matvecs=t.matvecs, seconds=s,
                               note=f"stderr/|trace| = {t.stderr / abs(t.value):.3f}"))
    t, s = _timed(lambda: hb.trace(op64, "hutch++", num_matvecs=1000, seed=0,
                                   target_rel_error=0.01, on_unconverged="ignore"))
    rows.append(CompareRow("hessbench trace hutch++, budget 1000, stop at stderr <= 1%",
                           trace_err=rel(t.value), matvecs=t.matvecs, seconds=s,
                           note=f"stderr/|trace| = {t.stderr / abs(t.value):.4f}; the sketch "
                           "takes 2/3 of the budget before the first stderr check"
                           + ("" if t.converged else "; NOT converged")))
    m_h = hutchinson_matvecs_for(ref, 0.01)
    rows.append(CompareRow("Hutchinson: matvecs for 1% RMSE", trace_err=hutchinson_rmse(ref, m_h),
                           matvecs=m_h, note="closed form, Var = 2(||H||_F^2 - sum H_ii^2)"))
    m_pp = hutchpp_matvecs_for(ref, 0.01, TRACE_SEEDS)
    rows.append(CompareRow(
        "Hutch++: matvecs for 1% RMSE", trace_err=None if m_pp is None else
        hutchpp_rmse(ref, m_pp, TRACE_SEEDS), matvecs=m_pp,
        note=f"RMSE over {len(TRACE_SEEDS)} seeds, budgets 3*round(2^(j/4))"
        + (f"; {m_pp / m_h:.2f} of Hutchinson's" if m_pp else "; none below n")))
    return rows


def _peer_values(result: object) -> tuple[np.ndarray, bool | None]:
    """(eigenvalues, converged flag or None) of a peer's top-k result."""
    values = getattr(result, "eigenvalues", result)
    converged = getattr(result, "converged", None)
    values = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else values
    flag = None if converged is None else bool(torch.as_tensor(converged).all())
    return np.asarray(values, dtype=np.float64), flag


def _peer_rows(w: Workload, ref: Reference) -> list[CompareRow]:
    """Top-5 and trace rows of the optional peers (curvlinops, hessian-eigenthings) at
    their defaults, on the float32 workload; a 'not installed' row for an absent one."""
    rows = []
    for name in ("curvlinops", "eigenthings"):
        cls = IMPLEMENTATIONS[name]
        if not cls.available():
            rows.append(CompareRow(f"{name}: skipped", note=f"not installed (no module "
                                   f"{cls.requires!r}; pip install 'hessbench[peers]')"))
            continue
        impl = cls()
        h = impl.prepare(w)
        r, s = _timed(impl.top_eigenvalues(h, 5))
        values, converged = _peer_values(r)
        rows.append(CompareRow(f"{name} top-5 (float32)", eig_error(values[:1], ref),
                               eig_error(values, ref), seconds=s,
                               note=PEER_NOTES[name]["top"] + (
                                   "" if converged in (None, True) else "; NOT converged")))
        t, s = _timed(impl.trace(h))
        value = float(getattr(t, "estimate", t))
        rows.append(CompareRow(f"{name} trace (float32)",
                               trace_err=abs(value - ref.trace) / abs(ref.trace), seconds=s,
                               note=PEER_NOTES[name]["trace"]))
    return rows


PEER_NOTES = {
    "curvlinops": {"top": "SciPy ARPACK eigsh on its to_scipy(), tol 1e-6",
                   "trace": "its hutchpp_trace, 99 matvecs"},
    "eigenthings": {"top": "its lanczos(which='LA', tol 1e-6)",
                    "trace": "its hutch_plus_plus, 100 matvecs"},
}
COMPARE_SECTIONS = ("exact reference (dense float64 + eigvalsh)", "top eigenvalues",
                    "trace", "density", "peers (curvlinops, hessian-eigenthings)")
"""The sections of :func:`compare_rows`, in order (its ``progress`` counts them)."""


def compare_rows(workload: str = "mlp", device: torch.device | str = "cpu",
                 progress: Callable[[int, str], None] | None = None) -> list[CompareRow]:
    """Every comparison row on ``workload`` (its dense float64 Hessian must fit);
    ``progress(i, section)`` is called before each of :data:`COMPARE_SECTIONS`."""
    step = progress or (lambda i, section: None)
    w = get_workload(workload, device)
    op64, op32 = w.hessian(dtype=torch.float64), w.hessian()
    step(0, COMPARE_SECTIONS[0])
    ref = exact_reference(op64)
    rows = [CompareRow("exact: dense float64 + eigvalsh (reference)", 0.0, 0.0, 0.0, 0.0,
                       matvecs=op64.num_params, seconds=ref.seconds)]
    step(1, COMPARE_SECTIONS[1])
    rows += _eig_rows(w, ref, op64, op32)
    step(2, COMPARE_SECTIONS[2])
    rows += _trace_rows(w, ref, op64)
    step(3, COMPARE_SECTIONS[3])
    d, s = _timed(HB.density(op64))
    rows.append(CompareRow("hessbench spectral_density, 8 probes x 80 steps",
                           density_err=density_w1(d, ref), matvecs=d.matvecs, seconds=s,
                           note="density error: W1 to the exact spectrum / spectral width"))
    p = pyhessian_density(w)
    rows.append(CompareRow("PyHessian density(iter=100, n_v=1)", matvecs=p.hvps, seconds=p.seconds,
                           note=crash_note(p.error) if p.error else "ran"))
    step(4, COMPARE_SECTIONS[4])
    rows += _peer_rows(w, ref)
    return rows


# ------------------------------------------------------------------ README table timings


@dataclass(frozen=True)
class SolverTimings:
    """Seconds per call of the solvers on one workload (medians; spectrum: one call)."""

    eigsh_top5: float
    eigsh_top5_matvecs: int
    pyhessian_top5: PyHessianRun   # one counted call (HVPs, seconds, or its error)
    trace_hutchpp: float
    density_slq: float
    spectrum: float


@dataclass(frozen=True)
class WorkloadTimings:
    """Seconds per call of the products on one workload (medians of samples of >= 20 ms),
    and of the solvers (None on a heavy workload)."""

    name: str
    num_params: int
    gradient: float
    hvp: float
    block: int
    hvp_block_per_vector: float
    pyhessian_hvp: float
    stream_batches: int
    hvp_streamed: float
    solvers: SolverTimings | None


@dataclass(frozen=True)
class DeviceTimings:
    """The table of one device: its label, the run's metadata at the start, the timings."""

    label: str
    meta: dict[str, object]
    repeats: int
    workloads: list[WorkloadTimings]


def _solver_timings(w: Workload, op: hb.CurvatureOperator, repeats: int) -> SolverTimings:
    dev = w.device
    eigsh = time_call(HB.top_eigenvalues(op, 5), repeats, device=dev).median
    return SolverTimings(
        eigsh_top5=eigsh, eigsh_top5_matvecs=eigsh_top(op, 5).matvecs,
        pyhessian_top5=pyhessian_eigenvalues(w, 5),
        trace_hutchpp=time_call(HB.trace(op), repeats, device=dev).median,
        density_slq=time_call(HB.density(op), max(1, repeats // 2), device=dev).median,
        spectrum=time_call(HB.spectrum(op), 1, warmup=0, device=dev).median)


def _workload_timings(w: Workload, repeats: int) -> WorkloadTimings:
    heavy = w.name in HEAVY
    op = HB.prepare(w)
    reps = max(1, repeats // 2) if heavy else repeats

    def median(fn: Callable[[], object]) -> float:   # samples of >= 20 ms each
        return time_call(fn, reps, device=w.device, min_sample=0.02).median

    gradient, hvp = median(gradient_fn(w)), median(HB.hvp(op))
    block = HEAVY_BLOCK if heavy else BLOCK
    per_vector = median(HB.hvp_block(op, block)) / block
    pyhessian_hvp = median(PYH.hvp(PYH.prepare(w)))
    streamed = median(HB.hvp(HB.prepare(w, w.stream_batch)))
    return WorkloadTimings(
        w.name, w.num_params, gradient, hvp, block, per_vector, pyhessian_hvp,
        math.ceil(len(w.inputs) / w.stream_batch), streamed,
        None if heavy else _solver_timings(w, op, repeats))


def _device_label(dev: torch.device, meta: dict[str, object]) -> str:
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return f"CPU, {meta['cpus']} cores, {meta['threads']} torch threads"


def measure_table(devices: list[str], repeats: int = 7,
                  workloads: tuple[str, ...] = ("mlp", "cnn", "resnet18")
                  ) -> list[DeviceTimings]:
    """The README table's timings, one :class:`DeviceTimings` per device (float32)."""
    out = []
    for device in devices:
        meta = run_meta()
        dev = torch.device(device)
        label = _device_label(dev, meta)
        timings = [_workload_timings(get_workload(name, dev), repeats) for name in workloads]
        out.append(DeviceTimings(label, meta, repeats, timings))
    return out
