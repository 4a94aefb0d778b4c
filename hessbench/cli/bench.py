"""``hessbench bench compare|gate|table``: the command line of the benchmark tooling
(:mod:`hessbench.bench`).

* ``compare`` -- hessbench vs its peers (PyHessian; curvlinops, hessian-eigenthings when
  installed) on one workload in one process: errors against the exact spectrum, matvec
  counts, wall times; progress per section, a 100-column table, the notes in a report.
* ``gate``    -- the CI regression gate (:mod:`hessbench.bench.gate`); exit 1 on a worse
  deterministic figure or a same-run time ratio beyond its margin, 2 (before measuring)
  on a missing, corrupt or empty baseline; ``--update`` rewrites the baseline.
* ``table``   -- the README performance section (:mod:`hessbench.bench.report`), printed
  or written between the README's perf-table markers, and a PNG of HVP / gradient
  against parameters and samples (:mod:`hessbench.bench.scaling`).

Measurements come from :mod:`hessbench.bench.measure`, on the workloads of
:mod:`hessbench.bench.workloads` that the asv suites in ``suites/`` time too.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from hessbench.cli.common import EXIT_FAIL, EXIT_OK, EXIT_USAGE, command_group, make_console

if TYPE_CHECKING:
    from hessbench.bench.gate import Check

__all__ = ["add_parser"]


def _setup(args: argparse.Namespace) -> None:
    if args.threads is not None:
        if args.threads < 1:
            raise SystemExit(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)


COMPARE_WIDTH = 100   # the terminal table's width; the notes go to the written report
EXPECTED_COMPARE = "about 3.5 min on mlp (203 s measured, 2 cores at load 4)"


def _narrow_console(width: int) -> Any:
    """A rich console at most ``width`` columns wide (narrower on a narrower terminal)."""
    import shutil

    from rich.console import Console

    return Console(highlight=False, width=min(width, shutil.get_terminal_size((width, 24)).columns))


def _compare(args: argparse.Namespace) -> int:
    import time

    from rich.markup import escape
    from rich.table import Table

    from hessbench.bench.measure import COMPARE_SECTIONS, compare_rows
    from hessbench.bench.report import COMPARE_COLUMNS, compare_cells, compare_markdown

    _setup(args)
    console = _narrow_console(COMPARE_WIDTH)
    start = time.perf_counter()
    total = len(COMPARE_SECTIONS)
    console.print(f"comparing on {args.workload} ({args.device}) in {total} sections; "
                  f"expected {EXPECTED_COMPARE} at 1 thread")

    def progress(i: int, section: str) -> None:
        elapsed = time.perf_counter() - start
        left = f", about {elapsed / i * (total - i):.0f} s left (extrapolated)" if i else ""
        console.print(f"[{i + 1}/{total}] {section} (elapsed {elapsed:.0f} s{left})")

    rows = compare_rows(args.workload, args.device, progress=progress)
    markdown = compare_markdown(rows)
    if args.markdown:
        print(markdown)
        return EXIT_OK
    report = args.report or Path("results/bench") / f"compare-{args.workload}-" \
        f"{time.strftime('%Y%m%d-%H%M%S')}.md"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(f"# hessbench bench compare: {args.workload} ({args.device})\n\n"
                      f"{markdown}\n")
    table = Table(title=f"{args.workload} ({args.device}): errors vs the exact float64 "
                  "spectrum; notes in the report", title_justify="left")
    shown = [c for c in COMPARE_COLUMNS if c != "note"]
    for col in shown:
        table.add_column(col, overflow="fold", max_width=34 if col == "method" else 9,
                         justify="left" if col == "method" else "right")
    for r in rows:
        table.add_row(*[escape(c) for c, col in zip(compare_cells(r), COMPARE_COLUMNS)
                        if col != "note"])
    console.print(table)
    console.print(f"notes and the full table: {report} ({time.perf_counter() - start:.0f} s)",
                  soft_wrap=True)
    return EXIT_OK


def _gate(args: argparse.Namespace) -> int:
    from hessbench.bench import gate as g
    from hessbench.bench import measure

    _setup(args)
    console = make_console()
    try:  # before measuring: a bad baseline fails at once
        baseline = None if args.update else g.load_baseline(args.baseline)
    except (OSError, ValueError) as exc:
        console.print(f"[red]error:[/] {exc}", soft_wrap=True)
        return EXIT_USAGE
    meta = measure.run_meta(args.threads)
    console.print(f"measuring on {args.device}: torch {meta['torch']}, {meta['threads']} "
                  f"threads, 1-min load {meta['loadavg_1min']}")
    track = measure.measure_track(args.device, scan=args.scan)
    ratios = measure.measure_ratios(args.device, repeats=args.repeats)
    if baseline is None:  # --update
        g.write_baseline(args.baseline, track, ratios, meta)
        console.print(f"wrote {len(track)} track and {len(ratios)} ratio figures to "
                      f"{args.baseline}")
        return EXIT_OK
    base_threads = baseline.get("meta", {}).get("threads")
    if base_threads is not None and base_threads != meta["threads"]:
        console.print(f"[yellow]note:[/] the baseline's ratios were measured with "
                      f"{base_threads} thread(s), these with {meta['threads']}; pass "
                      f"--threads {base_threads} to compare like with like")
    checks = g.compare(track, ratios, baseline) + g.target_checks(track, ratios)
    console.print(_gate_table(checks, baseline, args))
    return _gate_verdict(checks, args, console)


def _gate_table(checks: list[Check], baseline: dict, args: argparse.Namespace) -> Any:
    """The gate's checks as a rich table; targets read met / missed (MISSED when gating)."""
    from rich.table import Table

    from hessbench.bench.specs import RATIO_MARGIN

    table = Table(title=f"regression gate vs {args.baseline} (baseline measured "
                  f"{baseline.get('meta', {}).get('date', '?')}); ratio margin "
                  f"{RATIO_MARGIN:.0%}", title_justify="left")
    for col in ("figure", "kind", "baseline", "now", "limit", "verdict", "what"):
        table.add_column(col, overflow="fold")
    colour = {"pass": "green", "improved": "cyan", "fail": "red", "missing": "red"}
    for c in checks:
        status = c.status
        if c.kind == "target":
            status = "met" if c.status == "pass" else ("MISSED" if args.targets else "missed")
        shown = f"[{colour.get(c.status, 'white')}]{status}[/]"
        table.add_row(c.name, c.kind, _num(c.baseline), _num(c.now), _num(c.limit), shown,
                      c.description)
    return table


def _gate_verdict(checks: list[Check], args: argparse.Namespace, console: Any) -> int:
    """Print the verdict; EXIT_FAIL on a failed figure (or a missed target with --targets)."""
    failed = [c for c in checks if c.failed and c.kind != "target"]
    missed = [c for c in checks if c.kind == "target" and c.status == "fail"]
    if any(c.status == "improved" and c.kind == "track" for c in checks):
        console.print("some deterministic figures improved: lock them in with "
                      f"`hessbench bench gate --update --baseline {args.baseline}`")
    if failed or (args.targets and missed):
        names = ", ".join(c.name for c in failed + (missed if args.targets else []))
        console.print(f"[red]GATE FAILED[/]: {names}")
        return EXIT_FAIL
    console.print("[green]gate passed[/]" + (f" ({len(missed)} target(s) missed, not gating "
                                             "without --targets)" if missed else ""))
    return EXIT_OK


def _num(x: float | None) -> str:
    if x is None:
        return "—"
    if float(x).is_integer():
        return str(int(x))
    return f"{x:.4g}"


def _table(args: argparse.Namespace) -> int:
    from hessbench.bench.measure import measure_ratios, measure_table, measure_track
    from hessbench.bench.report import perf_table, replace_section

    _setup(args)
    devices = [d.strip() for d in args.devices.split(",") if d.strip()]
    if "cuda" in devices and not torch.cuda.is_available():
        devices.remove("cuda")
        print("cuda not available: CPU only", file=sys.stderr)
    track = measure_track("cpu", scan=True)
    ratios = measure_ratios("cpu", repeats=args.repeats)
    body = perf_table(measure_table(devices, args.repeats), track=track, ratios=ratios)
    if args.plot is not None:
        from hessbench.bench.scaling import measure_scaling, plot_scaling

        plot = plot_scaling(measure_scaling("cpu", repeats=args.repeats), args.plot)
        print(f"wrote {plot}", file=sys.stderr)
    if args.update_readme is None:
        print(body)
        return EXIT_OK
    path = Path(args.update_readme)
    try:
        path.write_text(replace_section(path.read_text(), body))
    except (OSError, ValueError) as exc:
        print(f"error: {path}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"updated the performance table in {path}")
    return EXIT_OK


def add_parser(subparsers: Any) -> None:
    """Register ``hessbench bench`` and its subcommands (see :mod:`hessbench.cli`)."""
    sub = command_group(subparsers, "bench", "benchmark tooling: compare, gate, table",
                        "{compare,gate,table}")

    def common(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--threads", type=int, default=None, metavar="N",
                       help="torch CPU threads (default: torch's choice)")
        return p

    cmp = common(sub.add_parser("compare", help="hessbench vs its peers on one workload"))
    cmp.add_argument("--workload", choices=("mlp", "mlp-init", "cnn"), default="mlp")
    cmp.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    cmp.add_argument("--markdown", action="store_true",
                     help="print the full markdown table (with notes) instead")
    cmp.add_argument("--report", type=Path, default=None, metavar="FILE",
                     help="where to write the full table (default: "
                     "results/bench/compare-<workload>-<time>.md)")
    cmp.set_defaults(handler=_compare)

    gate = common(sub.add_parser("gate", help="CI regression gate against a baseline"))
    gate.add_argument("--baseline", type=Path, default=Path("benchmarks/baseline.json"),
                      metavar="FILE", help="baseline JSON (default: benchmarks/baseline.json)")
    gate.add_argument("--update", action="store_true", help="rewrite the baseline instead")
    gate.add_argument("--repeats", type=int, default=7, help="timed calls per ratio side")
    gate.add_argument("--targets", action="store_true",
                      help="also fail when an issue target is missed")
    gate.add_argument("--scan", action="store_true",
                      help="also measure matvecs-for-1%% trace figures (about 2 min more)")
    gate.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    gate.set_defaults(handler=_gate)

    table = common(sub.add_parser("table", help="the README performance table (markdown)"))
    table.add_argument("--devices", default="cpu,cuda",
                       help="comma-separated devices; cuda is skipped when absent")
    table.add_argument("--repeats", type=int, default=7, help="timed calls per figure")
    table.add_argument("--plot", type=Path, default=Path("results/bench/hvp-scaling.png"),
                       metavar="PNG", help="also write HVP / gradient against parameters and "
                       "samples for every implementation (default: %(default)s)")
    table.add_argument("--update-readme", metavar="README", default=None,
                       help="rewrite the section between the perf-table markers of this file")
    table.set_defaults(handler=_table)
