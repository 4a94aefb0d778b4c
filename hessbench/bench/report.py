"""Human-facing benchmark reports, formatting only (the figures come from
:mod:`hessbench.bench.measure`): the hessbench-vs-PyHessian comparison table, and the
README performance section with the rewriter of its marked README section.
"""
from __future__ import annotations

from hessbench.bench.gate import Check, target_checks
from hessbench.bench.measure import CompareRow, DeviceTimings, WorkloadTimings

__all__ = ["COMPARE_COLUMNS", "compare_cells", "compare_markdown", "perf_table",
           "replace_section", "START_MARKER", "END_MARKER"]

START_MARKER = "<!-- perf-table:start -->"
END_MARKER = "<!-- perf-table:end -->"
COMPARE_COLUMNS = ("method", "top-1 rel err", "top-5 max rel err", "trace rel err",
                   "density err", "matvecs", "wall s", "note")


def _fmt(x: float | int | None, kind: str = "err") -> str:
    if x is None:
        return "—"
    if kind == "int":
        return str(int(x))
    if kind == "s":
        return f"{x:.3f}"
    return "0" if x == 0 else f"{x:.2e}"


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


def _column(t: WorkloadTimings) -> dict[str, str]:
    """One workload's cells, by row label."""
    out = {"gradient (autograd)": _fmt_time(t.gradient), "HVP, one vector": _fmt_time(t.hvp),
           "HVP / gradient": f"{t.hvp / t.gradient:.2f}x",
           "HVP in a block, per vector": f"{_fmt_time(t.hvp_block_per_vector)} "
                                         f"(block {t.block})",
           "PyHessian HVP (retained graph)": _fmt_time(t.pyhessian_hvp),
           "HVP streamed, per call": f"{_fmt_time(t.hvp_streamed)} "
                                     f"({t.stream_batches} batches)"}
    s = t.solvers
    if s is None:
        return out
    p = s.pyhessian_top5
    out["top-5 eigenvalues, hb.eigsh tol 1e-6"] = (f"{_fmt_time(s.eigsh_top5)} "
                                                   f"({s.eigsh_top5_matvecs} matvecs)")
    out["top-5 eigenvalues, PyHessian"] = ("crashes" if p.error else
                                           f"{_fmt_time(p.seconds)} ({p.hvps} HVPs)")
    out["trace, Hutch++ 100 matvecs"] = _fmt_time(s.trace_hutchpp)
    out["density, SLQ 8 probes x 80 steps"] = _fmt_time(s.density_slq)
    out["exact spectrum (hb.spectrum)"] = _fmt_time(s.spectrum)
    return out


def _markdown_grid(columns: dict[str, dict[str, str]]) -> str:
    names = list(columns)
    rows = list(dict.fromkeys(k for col in columns.values() for k in col))
    lines = ["| operation | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    lines += ["| " + row + " | " + " | ".join(columns[n].get(row, "—") for n in names) + " |"
              for row in rows]
    return "\n".join(lines)


def _device_section(d: DeviceTimings) -> str:
    meta = d.meta
    columns = {f"{t.name} ({t.num_params:,} params)": _column(t) for t in d.workloads}
    return (f"**{d.label}** — torch {meta['torch']}, {meta['date']}, 1-min load "
            f"average {meta['loadavg_1min']} at the start; medians of {d.repeats} "
            f"calls (ResNet-18: {max(1, d.repeats // 2)}), float32.\n\n"
            + _markdown_grid(columns))


def _figures_line(track: dict[str, float]) -> str:
    return ("Deterministic figures (MLP, float64, exact spectrum as reference): "
            f"top-5 eigenvalues to {track['mlp.eigsh_top5_rel_err']:.1e} max rel. error in "
            f"{track['mlp.eigsh_top5_matvecs']:.0f} matvecs (PyHessian: "
            f"{track['mlp.pyhessian_top5_hvps']:.0f} HVPs for "
            f"{track['mlp.pyhessian_top5_rel_err']:.1e}); trace to 1% RMSE in "
            f"{track['mlp.trace_hutchpp_matvecs_1pct']:.0f} matvecs with Hutch++ vs "
            f"{track['mlp.trace_hutchinson_matvecs_1pct']:.0f} with Hutchinson; SLQ density "
            f"W1 error {track['mlp.density_w1']:.1e} of the spectral width.")


def _target_lines(checks: list[Check]) -> list[str]:
    out = []
    for c in checks:
        verdict = "met" if c.status == "pass" else "**missed**"
        out.append(f"- {c.description}: {c.now:.4g} (limit {c.limit:.4g}) — {verdict}")
    return out


def perf_table(devices: list[DeviceTimings], track: dict[str, float] | None = None,
               ratios: dict[str, float] | None = None) -> str:
    """The README performance section (markdown): one timing table per device, then
    the deterministic figures and the performance targets when ``track``/``ratios`` are given."""
    parts = [_device_section(d) for d in devices]
    if track is not None:
        parts.append(_figures_line(track))
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
