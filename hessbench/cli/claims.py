"""``hessbench claims list|run|report|compare``: the claims engine on the command line.

``run`` uses the same runner as ``pytest claims`` (:class:`~hessbench.claims.runner.ClaimSession`)
with a progress bar, runs each selected claim's items and its controls', prints the
summary table and writes the report; ``--seeds`` replaces the declared seeds of every
item run (the report and the terminal say the run is not the declared one). Exit codes
of ``run``: 0 every item passed (known failures included), 1 any failure or error,
2 a usage or claim validation error (or ``--out`` in use by another run), 130
interrupted by Ctrl-C or SIGTERM (the report of the finished items is still written;
none when no item finished). A report never replaces one that holds items the run
lacks (it goes beside it instead); a run in ``results/claims`` becomes its ``latest``,
which ``report`` shows when given no directory (or ``latest``). ``compare RUN_A RUN_B``
prints what changed between two runs (:mod:`hessbench.claims.compare`; ``latest`` for
either); ``run -k / -m`` select items as pytest's options do
(:mod:`hessbench.claims.select`).

``list`` shows every claim that loads and prints the error of each that does not (exit 2
then); ``run ID...`` runs valid claims beside an invalid file (with a warning), a misspelt
id gets a "did you mean". ``--experiments MODULE`` imports experiments from outside
hessbench first (:mod:`hessbench.experiments.external`).
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from hessbench.claims.options import DEVICES, paper_on_cpu_warning
from hessbench.claims.select import Selection, markers
from hessbench.cli.common import (EXIT_FAIL, EXIT_OK, EXIT_USAGE, add_experiments_option,
                                  command_group, did_you_mean, import_experiment_modules,
                                  make_console)

__all__ = ["add_parser"]

EXIT_INTERRUPTED = 130  # what a shell reports for a command stopped by Ctrl-C


def _load_all(args: argparse.Namespace, console: Any) -> tuple[list[Any], list[str]] | None:
    """The valid claims of ``args.claims_dir`` and the ids (file stems) of the invalid ones,
    after importing the ``--experiments`` modules and printing every invalid file's error;
    None when the folder is missing or a module does not import."""
    from rich.markup import escape

    from hessbench.claims.discovery import claim_files
    from hessbench.claims.errors import ClaimSpecError
    from hessbench.claims.spec import load_claim

    if not import_experiment_modules(args, console):
        return None
    if not args.claims_dir.is_dir():
        console.print(f"[red]error:[/] claims directory {args.claims_dir} does not exist "
                      "(use --claims-dir)")
        return None
    claims, invalid = [], []
    for path in claim_files(args.claims_dir):
        try:
            claims.append(load_claim(path))
        except ClaimSpecError as exc:
            console.print(f"[red]invalid claim:[/] {escape(str(exc))}", soft_wrap=True)
            invalid.append(path.stem)
    return claims, invalid


def _list(args: argparse.Namespace) -> int:
    from rich.table import Table

    from hessbench.claims.spec import PROFILES

    console = make_console()
    loaded = _load_all(args, console)
    if loaded is None:
        return EXIT_USAGE
    claims, invalid = loaded
    table = Table(title=f"claims in {args.claims_dir}", title_justify="left")
    for col in ("id", "title", "source", "profiles", "controls"):
        table.add_column(col, overflow="fold")
    for c in claims:
        profiles = []
        for name in PROFILES:
            s = c.setup(name)
            profiles.append(f"{name}: {len(s.points())} point(s) x {len(s.seeds)} seed(s)"
                            + (", gpu" if s.gpu else ""))
        controls = (f"{len(c.controls)}: {', '.join(ctl.name for ctl in c.controls)}"
                    if c.controls else f"0 (no_control: {c.no_control})")
        table.add_row(c.id, c.title, str(c.source), "\n".join(profiles), controls)
    console.print(table)
    if invalid:
        console.print(f"[red]{len(invalid)} claim file(s) could not be loaded[/] (above): "
                      f"{', '.join(invalid)}", soft_wrap=True)
        return EXIT_USAGE
    return EXIT_OK


def print_tables(console: Any, items: list[dict[str, Any]], title: str, verbose: bool) -> None:
    """One line per item, then the full table of every item (``verbose``) or of those
    that failed, errored or passed against a known-failure note; with ``verbose`` also
    each known failure's miss beside its note."""
    from hessbench.claims.table import compact_table, detail_table, known_failure_notes

    console.print(title, soft_wrap=True, style="bold")
    console.print(compact_table(items), crop=False)
    for extra in (detail_table(items, verbose), verbose and known_failure_notes(items)):
        if extra:
            console.print(extra, crop=False)


def _run(args: argparse.Namespace) -> int:
    """Validate the claims and the options, lock ``--out``, then :func:`_run_locked`."""
    from hessbench.claims.lock import DirectoryInUse, RunLock
    from hessbench.claims.runner import ClaimSession

    from hessbench.claims.options import check_device

    console = make_console()
    try:
        check_device(args.device)
    except ValueError as exc:
        console.print(f"[red]error:[/] {exc}")
        return EXIT_USAGE
    loaded = _load_all(args, console)
    if loaded is None:
        return EXIT_USAGE
    claims, invalid = loaded
    known = sorted([c.id for c in claims] + invalid)
    unknown = sorted(set(args.ids) - set(known))
    if unknown:
        console.print(f"[red]error:[/] unknown claim id(s) {', '.join(unknown)}; known: "
                      f"{', '.join(known) or '(none)'}{did_you_mean(unknown, known)}")
        return EXIT_USAGE
    blocking = sorted(set(args.ids or invalid) & set(invalid))
    if blocking:
        console.print(f"[red]error:[/] cannot run invalid claim(s) {', '.join(blocking)} "
                      "(errors above)")
        return EXIT_USAGE
    if invalid:
        console.print(f"[yellow]warning:[/] not selected, invalid: {', '.join(invalid)}")
    selected = [c for c in claims if not args.ids or c.id in args.ids]
    if not selected:
        console.print(f"no claim files in {args.claims_dir}; nothing to verify")
        return EXIT_OK
    try:
        session = ClaimSession(args.profile, args.device, root=args.claims_dir.resolve().parent,
                               seeds=args.seeds)
        selection = Selection(args.keyword or None, args.marker or None)
    except ValueError as exc:
        console.print(f"[red]error:[/] {exc}")
        return EXIT_USAGE
    work = [(c, s, p) for c in selected for s, p in session.plan(c)
            if selection.matches(_keywords(c, s, p), markers(s.gpu))]
    if not work:
        console.print(f"[red]error:[/] {selection.describe()} selects none of the items of "
                      f"{', '.join(c.id for c in selected)}", soft_wrap=True)
        return EXIT_USAGE
    note = paper_on_cpu_warning(args.profile, str(session.device),
                                sum(s.gpu for _, s, _ in work))
    if note:
        console.print(f"[yellow]warning:[/] {note}", soft_wrap=True)

    try:
        lock = None if args.out is None else RunLock(args.out).acquire()
    except (DirectoryInUse, OSError) as exc:
        console.print(f"[red]error:[/] {exc}", soft_wrap=True)
        return EXIT_USAGE
    if lock is not None and lock.note:
        console.print(f"[yellow]warning:[/] {lock.note}", soft_wrap=True)
    try:
        return _run_locked(args, session, work, console)
    finally:
        if lock is not None:
            lock.release()


def _keywords(claim: Any, setup: Any, point: Any) -> set[str]:
    """What ``-k`` matches for an item, as in ``pytest claims`` (:mod:`hessbench.claims.select`)."""
    return {claim.item_id(setup, point), claim.path.name, claim.path.parent.name,
            claim.experiment, *markers(setup.gpu)}


def _run_locked(args: argparse.Namespace, session: Any, work: list[tuple[Any, Any, Any]],
                console: Any) -> int:
    """Run every (claim, setup, point) of ``work`` (SIGTERM stops the run as Ctrl-C does),
    write the report of the finished items and print the table; the exit code of ``run``."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from hessbench.claims.report import seeds_override_note
    from hessbench.claims.runner import sigterm_interrupts
    from hessbench.claims.status import Status
    note = seeds_override_note(args.seeds)
    if note:
        console.print(note, style="bold yellow")
    override = f"; {note}" if note else ""
    steps = sum(len(s.seeds) for _, s, _ in work)
    interrupted = False
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, disable=not console.is_terminal) as bar, \
            sigterm_interrupts():
        task = bar.add_task("claims", total=steps)
        try:
            for claim, setup, point in work:
                bar.update(task, description=claim.item_id(setup, point))
                r = session.run(claim, setup, point, on_seed=lambda _seed: bar.advance(task))
                bar.console.print(f"{r.status.label:5} {r.item_id}  {r.seconds:.2f} s",
                                  markup=False)
        except KeyboardInterrupt:
            interrupted = True
    if not session.results:
        console.print("interrupted before the first item finished: no report written"
                      + (f" (the report in {args.out} is kept)" if args.out else ""))
        return EXIT_INTERRUPTED
    out = session.write_report(args.out, interrupted=interrupted)
    if args.out is not None and out != args.out:
        console.print(f"[yellow]note:[/] kept the report in {args.out}, which holds items "
                      f"this run lacks; this run's report is in {out}", soft_wrap=True)
    print_tables(console, [r.to_dict() for r in session.results],
                 f"profile {args.profile}, device {session.device}{override}", args.verbose)
    counts = session.summary
    console.print(f"{session.summary_line()}{override}; report: {out / 'report.md'}")
    if interrupted:
        return EXIT_INTERRUPTED
    failed = sum(counts[s.value] for s in (Status.FAIL, Status.ERROR,
                                           Status.KNOWN_FAILURE_PASSED))
    return EXIT_OK if failed == 0 else EXIT_FAIL


def _run_dir(run: str | None, results_dir: Path, console: Any) -> Path:
    """A run's directory: ``run`` itself, or (``None`` or ``latest``) the latest run in
    ``results_dir``, which is then printed. ``FileNotFoundError`` when there is none."""
    from hessbench.claims.latest import find_latest

    if run is not None and run != "latest":
        return Path(run)
    found = find_latest(results_dir)
    console.print(f"latest run: {found}")
    return found


def _report(args: argparse.Namespace) -> int:
    from hessbench.claims.report import (atomic_write_text, load_report, render_markdown,
                                         seeds_override_note)
    console = make_console()
    try:
        args.dir = _run_dir(args.dir, args.results_dir, console)
        report = load_report(args.dir)
    except (OSError, ValueError) as exc:
        console.print(f"[red]error:[/] {exc}")
        return EXIT_USAGE
    atomic_write_text(args.dir / "report.md", render_markdown(report))
    note = seeds_override_note(report["seeds_override"])
    print_tables(console, report["items"], f"{args.dir} (profile {report['profile']}, "
                 f"device {report['device']})" + (f"; {note}" if note else ""), args.verbose)
    console.print(f"re-rendered {args.dir / 'report.md'}")
    return EXIT_OK


def _compare(args: argparse.Namespace) -> int:
    from hessbench.claims.compare import compare_reports, render
    from hessbench.claims.report import load_report

    console = make_console()
    try:
        dirs = [_run_dir(run, args.results_dir, console) for run in (args.run_a, args.run_b)]
        diff = compare_reports(*(load_report(d) for d in dirs), rtol=args.rtol)
    except (OSError, ValueError) as exc:
        console.print(f"[red]error:[/] {exc}", soft_wrap=True)
        return EXIT_USAGE
    for line in render(diff, [str(d) for d in dirs]):
        console.print(line, markup=False, soft_wrap=True)
    return EXIT_OK


def add_parser(subparsers: Any) -> None:
    """Register ``hessbench claims`` and its commands ``list``, ``run``, ``report`` and
    ``compare``."""
    sub = command_group(subparsers, "claims", "list, run, report and compare paper claims",
                        "{list,run,report,compare}")

    def with_results(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--results-dir", type=Path, default=Path("results/claims"),
                       metavar="DIR", help="folder of runs, for 'latest' (default: "
                       "./results/claims)")
        return p

    def with_dir(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--claims-dir", type=Path, default=Path("claims"), metavar="DIR",
                       help="folder of claim files (default: ./claims)")
        return add_experiments_option(p)

    with_dir(sub.add_parser("list", help="id, title, source, profiles and controls of every "
                            "claim")
             ).set_defaults(handler=_list)
    run = with_dir(sub.add_parser("run", help="run claims (all, or the given ids)"))
    run.add_argument("ids", nargs="*", metavar="ID", help="claim ids (default: all)")
    run.add_argument("--device", choices=DEVICES, default="auto")
    run.add_argument("--profile", choices=("smoke", "paper"), default="smoke")
    run.add_argument("--seeds", type=int, nargs="+", default=None, metavar="S",
                     help="run these seeds instead of the declared ones, for every item "
                     "(claims and controls); the report marks the run as not the declared one")
    run.add_argument("-k", dest="keyword", metavar="EXPR", default=None,
                     help="only the items whose id, file, experiment or markers match EXPR, "
                     "as pytest's -k (e.g. -k 'sagun and not control')")
    run.add_argument("-m", dest="marker", metavar="EXPR", default=None,
                     help="only the items whose markers (claim, gpu, slow) match EXPR, as "
                     "pytest's -m; -m 'not gpu' keeps the paper items that fit a CPU")
    run.add_argument("--out", type=Path, default=None, metavar="DIR",
                     help="report directory (default: results/claims/<timestamp> next to "
                     "the claims folder)")
    run.add_argument("-v", "--verbose", action="store_true",
                     help="the full measured-vs-expected table of every item (default: one "
                     "line per item, full tables for the items that failed)")
    run.set_defaults(handler=_run)
    report = with_results(sub.add_parser("report", help="re-render report.md and print the "
                                         "table of a run"))
    report.add_argument("dir", metavar="RUN", nargs="?", default=None,
                        help="a run's directory (report.json) or 'latest' (the default): the "
                        "latest run in --results-dir")
    report.add_argument("-v", "--verbose", action="store_true",
                        help="the full measured-vs-expected table of every item")
    report.set_defaults(handler=_report)
    compare = with_results(sub.add_parser("compare", help="what changed from run RUN_A to "
                                          "run RUN_B: statuses, new and removed items, "
                                          "metrics that moved"))
    for name in ("run_a", "run_b"):
        compare.add_argument(name, metavar=name.upper(),
                             help="a run's directory (report.json) or 'latest'")
    compare.add_argument("--rtol", type=float, default=1e-6, metavar="R",
                         help="a metric moved when it changed by more than R relative to "
                         "the larger magnitude (default: 1e-6)")
    compare.set_defaults(handler=_compare)
