"""Human-facing benchmark reports: the hessbench-vs-PyHessian comparison (issue 2, item 5)
and the README performance table, with the rewriter of its marked README section.

Accuracy rows use the exact spectrum of the float64 operator as the reference (see
:mod:`hessbench.bench_figures`); timings are medians of repeated calls in one process
(:mod:`hessbench.bench_workloads`), float32 unless a row says float64.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

import hessbench as hb
from hessbench.bench_figures import (Reference, density_w1, eig_error, exact_reference,
                                     hutchinson_matvecs_for, hutchinson_rmse,
                                     hutchpp_matvecs_for, hutchpp_rmse)
from hessbench.bench_gate import BLOCK, TRACE_SEEDS, Check, run_meta, target_checks
from hessbench.bench_pyhessian import (pyhessian_density, pyhessian_eigenvalues,
                                       pyhessian_hessian, pyhessian_hvp_fn, pyhessian_trace)
from hessbench.bench_workloads import (Workload, get_workload, gradient_fn, hvp_fn,
                                       time_call)

__all__ = ["CompareRow", "COMPARE_COLUMNS", "compare_rows", "compare_cells", "compare_markdown",
           "perf_table", "replace_section", "START_MARKER", "END_MARKER"]

START_MARKER = "<!-- perf-table:start -->"
END_MARKER = "<!-- perf-table:end -->"


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


def _crash(error: str) -> str:
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
            r, s = _timed(lambda op=op: hb.eigsh(op, k=k, tol=1e-6, seed=0,
                                                  return_vectors=False, on_unconverged="ignore"))
            rows.append(CompareRow(
                f"hessbench eigsh k={k}, tol 1e-6 ({label})", eig_error(r.values[:1], ref),
                eig_error(r.values, ref) if k == 5 else None, matvecs=r.matvecs, seconds=s,
                note="" if r.converged else "NOT converged"))
        p = pyhessian_eigenvalues(w, k)
        if p.error:
            rows.append(CompareRow(f"PyHessian eigenvalues(top_n={k})", matvecs=p.hvps,
                                   seconds=p.seconds, note=_crash(p.error)))
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
                       note=_crash(p.error) if p.error else
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


def compare_rows(workload: str = "mlp", device: torch.device | str = "cpu") -> list[CompareRow]:
    """Every comparison row on ``workload`` (its dense float64 Hessian must fit)."""
    w = get_workload(workload, device)
    op64, op32 = w.hessian(dtype=torch.float64), w.hessian()
    ref = exact_reference(op64)
    rows = [CompareRow("exact: dense float64 + eigvalsh (reference)", 0.0, 0.0, 0.0, 0.0,
                       matvecs=op64.num_params, seconds=ref.seconds)]
    rows += _eig_rows(w, ref, op64, op32)
    rows += _trace_rows(w, ref, op64)
    d, s = _timed(lambda: hb.spectral_density(op64, num_probes=8, lanczos_steps=80, seed=0))
    rows.append(CompareRow("hessbench spectral_density, 8 probes x 80 steps",
                           density_err=density_w1(d, ref), matvecs=d.matvecs, seconds=s,
                           note="density error: W1 to the exact spectrum / spectral width"))
    p = pyhessian_density(w)
    rows.append(CompareRow("PyHessian density(iter=100, n_v=1)", matvecs=p.hvps, seconds=p.seconds,
                           note=_crash(p.error) if p.error else "ran"))
    return rows


def _fmt(x: float | int | None, kind: str = "err") -> str:
    if x is None:
        return "—"
    if kind == "int":
        return str(int(x))
    if kind == "s":
        return f"{x:.3f}"
    return "0" if x == 0 else f"{x:.2e}"


COMPARE_COLUMNS = ("method", "top-1 rel err", "top-5 max rel err", "trace rel err",
                   "density err", "matvecs", "wall s", "note")


def compare_cells(r: CompareRow) -> list[str]:
    """One row's cells, in :data:`COMPARE_COLUMNS` order."""
    return [r.method, _fmt(r.top1_err), _fmt(r.top5_err), _fmt(r.trace_err),
            _fmt(r.density_err), _fmt(r.matvecs, "int"), _fmt(r.seconds, "s"), r.note]


def compare_markdown(rows: list[CompareRow]) -> str:
    """The comparison as a markdown table."""
    lines = ["| " + " | ".join(COMPARE_COLUMNS) + " |", "|---" * len(COMPARE_COLUMNS) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in compare_cells(r)) + " |"
              for r in rows]
    return "\n".join(lines)


# ----------------------------------------------------------------- README performance table


def _fmt_time(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


HEAVY = {"resnet18"}   # only product timings (eigensolvers would take minutes on a CPU)


def _timings(w: Workload, repeats: int) -> dict[str, str]:
    """Median timings of one workload, formatted for the table."""
    dev = w.device
    op = w.hessian()
    reps = max(1, repeats // 2) if w.name in HEAVY else repeats
    def median(fn: Callable[[], object]) -> float:   # samples of >= 20 ms each
        return time_call(fn, reps, device=dev, min_sample=0.02).median

    t_grad, t_hvp = median(gradient_fn(w)), median(hvp_fn(op))
    block = 4 if w.name in HEAVY else BLOCK
    t_block = median(hvp_fn(op, block)) / block
    t_pyh = median(pyhessian_hvp_fn(pyhessian_hessian(w)))
    t_stream = median(hvp_fn(w.hessian(batch_size=w.stream_batch)))
    out = {"gradient (autograd)": _fmt_time(t_grad), "HVP, one vector": _fmt_time(t_hvp),
           "HVP / gradient": f"{t_hvp / t_grad:.2f}x",
           "HVP in a block, per vector": f"{_fmt_time(t_block)} (block {block})",
           "PyHessian HVP (retained graph)": _fmt_time(t_pyh),
           "HVP streamed, per call": f"{_fmt_time(t_stream)} "
                                     f"({math.ceil(len(w.inputs) / w.stream_batch)} batches)"}
    if w.name in HEAVY:
        return out
    r = time_call(lambda: hb.eigsh(op, k=5, tol=1e-6, seed=0, return_vectors=False,
                                   on_unconverged="ignore"), repeats, device=dev)
    mv = hb.eigsh(op, k=5, tol=1e-6, seed=0, return_vectors=False, on_unconverged="ignore").matvecs
    p = pyhessian_eigenvalues(w, 5)
    out["top-5 eigenvalues, hb.eigsh tol 1e-6"] = f"{_fmt_time(r.median)} ({mv} matvecs)"
    out["top-5 eigenvalues, PyHessian"] = ("crashes" if p.error else
                                           f"{_fmt_time(p.seconds)} ({p.hvps} HVPs)")
    out["trace, Hutch++ 100 matvecs"] = _fmt_time(time_call(
        lambda: hb.trace(op, "hutch++", num_matvecs=100, seed=0), repeats, device=dev).median)
    out["density, SLQ 8 probes x 80 steps"] = _fmt_time(time_call(
        lambda: hb.spectral_density(op, num_probes=8, lanczos_steps=80, seed=0),
        max(1, repeats // 2), device=dev).median)
    out["exact spectrum (hb.spectrum)"] = _fmt_time(time_call(
        lambda: hb.spectrum(op), 1, warmup=0, device=dev).median)
    return out


def _markdown_grid(columns: dict[str, dict[str, str]]) -> str:
    names = list(columns)
    rows = list(dict.fromkeys(k for col in columns.values() for k in col))
    lines = ["| operation | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    lines += ["| " + row + " | " + " | ".join(columns[n].get(row, "—") for n in names) + " |"
              for row in rows]
    return "\n".join(lines)


def _target_lines(checks: list[Check]) -> list[str]:
    out = []
    for c in checks:
        verdict = "met" if c.status == "pass" else "**missed**"
        out.append(f"- {c.description}: {c.now:.4g} (limit {c.limit:.4g}) — {verdict}")
    return out


def perf_table(devices: list[str], repeats: int = 7,
               workloads: tuple[str, ...] = ("mlp", "cnn", "resnet18"),
               track: dict[str, float] | None = None,
               ratios: dict[str, float] | None = None) -> str:
    """The README performance section (markdown): one timing table per device, then
    the deterministic figures and the issue targets when ``track``/``ratios`` are given."""
    parts = []
    for device in devices:
        meta = run_meta()
        dev = torch.device(device)
        label = torch.cuda.get_device_name(dev) if dev.type == "cuda" else \
            f"CPU, {meta['cpus']} cores, {meta['threads']} torch threads"
        columns = {}
        for name in workloads:
            w = get_workload(name, dev)
            columns[f"{name} ({w.num_params:,} params)"] = _timings(w, repeats)
        parts.append(f"**{label}** — torch {meta['torch']}, {meta['date']}, 1-min load "
                     f"average {meta['loadavg_1min']} at the start; medians of {repeats} "
                     f"calls (ResNet-18: {max(1, repeats // 2)}), float32.\n\n"
                     + _markdown_grid(columns))
    if track is not None:
        parts.append(
            "Deterministic figures (MLP, float64, exact spectrum as reference): "
            f"top-5 eigenvalues to {track['mlp.eigsh_top5_rel_err']:.1e} max rel. error in "
            f"{track['mlp.eigsh_top5_matvecs']:.0f} matvecs (PyHessian: "
            f"{track['mlp.pyhessian_top5_hvps']:.0f} HVPs for "
            f"{track['mlp.pyhessian_top5_rel_err']:.1e}); trace to 1% RMSE in "
            f"{track['mlp.trace_hutchpp_matvecs_1pct']:.0f} matvecs with Hutch++ vs "
            f"{track['mlp.trace_hutchinson_matvecs_1pct']:.0f} with Hutchinson; SLQ density "
            f"W1 error {track['mlp.density_w1']:.1e} of the spectral width.")
        parts.append("Targets:\n" + "\n".join(_target_lines(target_checks(track, ratios or {}))))
    cmd = "hessbench bench table --threads 1 --update-readme README.md"
    return f"_Regenerate with `{cmd}`._\n\n" + "\n\n".join(parts)


def replace_section(text: str, body: str, start: str = START_MARKER,
                    end: str = END_MARKER) -> str:
    """``text`` with everything between the ``start`` and ``end`` markers replaced by
    ``body``; exactly one pair, in order, must be present."""
    n_start, n_end = text.count(start), text.count(end)
    if n_start != 1 or n_end != 1:
        raise ValueError(f"expected exactly one {start!r} and one {end!r} marker, found "
                         f"{n_start} and {n_end}")
    i, j = text.index(start), text.index(end)
    if j < i:
        raise ValueError(f"{end!r} comes before {start!r}")
    return text[:i + len(start)] + "\n" + body.strip("\n") + "\n" + text[j:]

