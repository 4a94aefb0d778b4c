"""pytest plugin (entry point ``pytest11: hessbench``): ``pytest claims`` runs claim files.

Collection: a claim file is ``claims/<id>.toml`` (see
:func:`~hessbench.claims.discovery.is_claim_file`) outside any ``tests/`` folder of
the rootdir; each grid point of the selected profile is one item named
``<id>[<grid point>]``, and each grid point of each control one item named
``<id>[control-<name>]`` or ``<id>[control-<name>-<grid point>]`` (so ``-k control``
selects the controls), all marked ``claim`` (plus ``gpu`` and ``slow`` under a GPU
profile such as ``paper``). An invalid file is a collection error naming the file,
the key and the problem.

Phases: the item's *setup* runs the experiment for all seeds and evaluates the
expectations; an exception there is an ERROR with its traceback (a bug). Its *call*
fails with the claim statement, source and measured-vs-expected table when an
expectation does not hold; a control's fails when an expectation it lists in
``expect_fail`` holds, saying which, with the table and the control's reason.

At session end the report (report.json, report.md, one PNG per claim) is written to
``--claims-out`` or ``<rootdir>/results/claims/<timestamp>`` and a table is printed
(never over a report holding items this run lacks: then beside it). ``--claims-out``
is locked for the run (another run into it is a usage error), and once a claim file is
collected SIGTERM interrupts the run as Ctrl-C does, so the finished items are reported.
An experiment raising ``SystemExit`` is an error item like any other exception.
When the arguments are only ``claims/`` folders that hold no claim file, the
"no tests collected" exit status 5 becomes 0: an empty claims folder verifies
nothing and is not an error.

``pytest claims -n N`` (pytest-xdist) runs items in N workers and writes one report from
the controller (:mod:`hessbench.claims.parallel`).

Experiments from outside hessbench: ``--experiments MODULE`` (repeatable) imports a module
that registers them, as do ``-p MODULE``, a ``conftest.py`` and the entry point group
``hessbench.experiments`` (:mod:`hessbench.experiments.external`). ``--device cuda``
without a GPU is one usage error.

Everything heavy (torch, numpy, the registry) is imported only once a claim file is
collected (or ``--experiments`` / ``--device cuda`` is given), so the plugin costs
nothing in ``pytest tests``.
"""
from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from hessbench.claims.discovery import is_claim_file
from hessbench.claims.options import DEVICES, EXPERIMENTS_HELP, check_device, paper_on_cpu_warning
from hessbench.claims.select import markers
from hessbench.claims.status import Status

if TYPE_CHECKING:
    from hessbench.claims.runner import ClaimSession, ItemResult
    from hessbench.claims.spec import Claim, GridPoint, Setup

MARKERS = ("claim: a paper claim declared in claims/*.toml",
           "gpu: a claim item at GPU scale (paper profile)",
           "slow: takes more than a few seconds")


@dataclass
class _State:
    files: int = 0
    session: ClaimSession | None = None
    out_dir: Path | None = None
    guards: ExitStack = field(default_factory=ExitStack)  # the --claims-out lock, SIGTERM

    def get_session(self, config: pytest.Config) -> ClaimSession:
        if self.session is None:
            from hessbench.claims.runner import ClaimSession, sigterm_interrupts

            self.session = ClaimSession(profile=config.getoption("hessbench_profile"),
                                        device=config.getoption("hessbench_device"),
                                        root=config.rootpath)
            self.guards.enter_context(sigterm_interrupts())  # claims run: SIGTERM = Ctrl-C
        return self.session


_STATE = pytest.StashKey[_State]()


def _state(config: pytest.Config) -> _State:
    return config.stash.setdefault(_STATE, _State())


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--device``, ``--profile``, ``--claims-out`` and ``--experiments``."""
    group = parser.getgroup("hessbench", "hessbench claims (pytest claims)")
    group.addoption("--experiments", dest="hessbench_experiments", action="append",
                    default=[], metavar="MODULE", help=EXPERIMENTS_HELP)
    group.addoption("--device", dest="hessbench_device", choices=DEVICES,
                    default="auto", help="device for claim experiments; auto = cuda when "
                    "available (default: auto)")
    group.addoption("--profile", dest="hessbench_profile", choices=("smoke", "paper"),
                    default="smoke", help="claim profile: smoke = CPU/CI minutes, paper = the "
                    "paper's scale on a GPU (default: smoke)")
    group.addoption("--claims-out", dest="hessbench_claims_out", default=None, metavar="DIR",
                    help="directory for report.json, report.md and figures "
                    "(default: <rootdir>/results/claims/<timestamp>)")


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``claim``, ``gpu`` and ``slow`` markers; import the ``--experiments``
    modules and check ``--device`` (a bad value is one usage error, not one per file)."""
    for line in MARKERS:
        config.addinivalue_line("markers", line)
    if config.pluginmanager.has_plugin("xdist"):   # -n N: workers run, controller reports
        from hessbench.claims.parallel import XdistMerge

        config.pluginmanager.register(XdistMerge(_state), "hessbench-xdist")
    try:
        check_device(config.getoption("hessbench_device"))
        modules = config.getoption("hessbench_experiments")
        if modules:
            from hessbench.experiments.external import import_experiments

            import_experiments(modules)
    except (ValueError, ImportError) as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_sessionstart(session: pytest.Session) -> None:
    """Lock ``--claims-out`` for this run (a usage error when another run holds it)."""
    state, out = _state(session.config), session.config.getoption("hessbench_claims_out")
    if out and not hasattr(session.config, "workerinput"):   # xdist: the controller's lock
        from hessbench.claims.lock import DirectoryInUse, RunLock

        try:
            lock = state.guards.enter_context(RunLock(Path(out).resolve()))
        except (DirectoryInUse, OSError) as exc:
            raise pytest.UsageError(str(exc)) from None
        if lock.note:
            session.config.get_terminal_writer().line(f"hessbench: warning: {lock.note}",
                                                      yellow=True)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Say so when selected items marked gpu (the paper profile) are to run on a CPU."""
    state = _state(session.config)
    gpu_items = sum(isinstance(it, ClaimItem) and it.claim_setup.gpu for it in session.items)
    if state.session is None or not gpu_items or hasattr(session.config, "workerinput"):
        return
    note = paper_on_cpu_warning(state.session.profile, str(state.session.device), gpu_items)
    if note:
        session.config.get_terminal_writer().line(f"hessbench: warning: {note}", yellow=True)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Release the ``--claims-out`` lock and restore SIGTERM's handler (after the report
    is written)."""
    _state(config).guards.close()


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    """A :class:`ClaimFile` for a claim file outside the rootdir's ``tests/`` folders."""
    if not is_claim_file(file_path):
        return None
    try:
        rel_parts = file_path.relative_to(parent.config.rootpath).parts
    except ValueError:
        rel_parts = file_path.parts
    if "tests" in rel_parts[:-1]:
        return None
    return ClaimFile.from_parent(parent, path=file_path)


class ClaimFile(pytest.File):
    """A claim declaration; one :class:`ClaimItem` per grid point of the profile, the
    claim's then each control's."""

    def collect(self) -> list[ClaimItem]:
        from hessbench.claims.spec import load_claim

        state = _state(self.config)
        state.files += 1
        try:
            claim = load_claim(self.path)
            plan = state.get_session(self.config).plan(claim)
        except ValueError as exc:  # ClaimSpecError (a duplicate id too), or no GPU for cuda
            raise self.CollectError(str(exc)) from None
        return [ClaimItem.from_parent(self, name=claim.item_id(setup, p), claim=claim,
                                      setup=setup, point=p)
                for setup, p in plan]


class ClaimFailed(Exception):
    """An expectation of a claim did not hold (a claim failure, not a bug)."""

    def __init__(self, result: ItemResult) -> None:
        super().__init__(result.item_id)
        self.result = result


class ClaimItem(pytest.Item):
    """One grid point of a claim or of one of its controls: all its seeds, then the
    claim's expectations."""

    def __init__(self, *, claim: Claim, setup: Setup, point: GridPoint, **kw: Any) -> None:
        super().__init__(**kw)
        self.claim, self.claim_setup, self.point = claim, setup, point
        self.result: ItemResult | None = None
        for marker in markers(setup.gpu):
            self.add_marker(marker)
        self.extra_keyword_matches.add(claim.experiment)

    def setup(self) -> None:
        session = _state(self.config).get_session(self.config)
        self.result = session.run(self.claim, self.claim_setup, self.point)
        if self.result.exception is not None:
            raise self.result.exception

    def runtest(self) -> None:
        assert self.result is not None
        if self.result.status in (Status.FAIL, Status.KNOWN_FAILURE_PASSED):
            raise ClaimFailed(self.result)
        if self.result.status == Status.KNOWN_FAILURE:
            from hessbench.claims.known import beside_note

            item = self.result.to_dict()
            pytest.xfail(f"known failure at profile {self.claim_setup.profile}: "
                         + beside_note(item["known_failure"], item["known_failure_measured"]))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> str | Any:
        if isinstance(excinfo.value, ClaimFailed):
            return failure_text(excinfo.value.result, _table_width(self.config))
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        label = self.claim_setup.label(self.point)
        return self.path, None, f"claim {self.claim.id}" + (f" [{label}]" if label else "")


@pytest.hookimpl(tryfirst=True)
def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config
                             ) -> tuple[str, str, str] | None:
    """A claim item's known failure reads ``KNOWN FAILURE`` in ``-v`` lines, the word of
    the summary and the report (pytest's category, letter and counts stay ``xfailed``)."""
    if report.when == "call" and report.skipped and hasattr(report, "wasxfail") \
            and "claim" in report.keywords:
        return "xfailed", "x", Status.KNOWN_FAILURE.label
    return None


def failure_text(result: ItemResult, width: int) -> str:
    """Statement, source and the measured-vs-expected table of a failed item; for a
    control, which listed expectations held and the control's reason first."""
    from hessbench.claims.table import expectation_table, to_text

    c, s = result.claim, result.setup
    if result.status == Status.KNOWN_FAILURE_PASSED:
        return (f"claim {result.item_id} PASSED but profile {s.profile} declares it a known "
                f"failure ({s.known_failure_at(result.point)!r}); it replicates now: remove "
                f"`known_failure` (or this point from its `points`) "
                f"from {c.path.name}")
    run = (f"(profile {s.profile}, device {result.device}, seeds {list(s.seeds)}, "
           f"{result.seconds:.2f} s)")
    if s.control is None:
        lines = [f"claim {result.item_id} FAILED {run}"]
        shown = [v for v in result.verdicts if not v.passed]
    else:
        lines = [f"control {result.item_id} FAILED {run}: the claim's test would pass without "
                 "the effect",
                 f"held in the control (predicted to fail): {', '.join(result.held)}",
                 f"control reason: {s.control.reason}"]
        shown = [v for v in result.verdicts if v.name in result.held]
    lines += [f"statement: {c.statement}", f"source:    {c.source}", "",
              to_text(expectation_table(result.to_dict()), width), ""]
    lines += [f"- {v.message}\n  reason: {v.reason}" for v in shown]
    return "\n".join(lines)


def _table_width(config: pytest.Config) -> int:
    """The terminal's width; when writing to a file or CI log, ``COLUMNS`` if set, else
    160 columns (no wrapping)."""
    import shutil

    writer = config.get_terminal_writer()
    return writer.fullwidth if writer.hasmarkup else shutil.get_terminal_size((160, 24)).columns


def _only_claims_dirs(config: pytest.Config) -> bool:
    paths = [config.invocation_params.dir / a.split("::")[0] for a in config.args]
    return bool(paths) and all(p.is_dir() and p.name == "claims" for p in paths)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Write the report of the items run; exit 0 instead of 5 for empty claims folders."""
    state = _state(session.config)
    if hasattr(session.config, "workerinput"):   # an xdist worker: the controller reports
        return
    if (exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED and state.files == 0
            and _only_claims_dirs(session.config)):
        session.exitstatus = pytest.ExitCode.OK
        return
    if state.session is None or not state.session.results:
        return
    out = session.config.getoption("hessbench_claims_out")
    state.out_dir = state.session.write_report(
        Path(out).resolve() if out else None, interrupted=exitstatus == pytest.ExitCode.INTERRUPTED)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int,
                            config: pytest.Config) -> None:
    """The summary table, the summary line and the report's path."""
    state = _state(config)
    if state.files == 0 and _only_claims_dirs(config):
        terminalreporter.write_line("hessbench: no claim files (claims/<id>.toml) found; "
                                    "nothing to verify")
        return
    if state.session is None or not state.session.results:
        return
    from hessbench.claims.table import compact_table, detail_table, known_failure_notes, to_text

    ses = state.session
    terminalreporter.write_sep("=", f"hessbench claims (profile {ses.profile}, "
                                    f"device {ses.device})")
    items = [r.to_dict() for r in ses.results]
    width = _table_width(config)
    terminalreporter.write_line(to_text(compact_table(items), width))
    verbose = config.option.verbose > 0
    for extra in (detail_table(items, verbose), verbose and known_failure_notes(items)):
        if extra:
            terminalreporter.write_line(to_text(extra, width))
    terminalreporter.write_line(ses.summary_line())
    out = config.getoption("hessbench_claims_out")
    if out and state.out_dir is not None and state.out_dir != Path(out).resolve():
        terminalreporter.write_line(f"kept the report in {out}, which holds items this run "
                                    f"lacks; this run's report is beside it")
    if state.out_dir is not None:
        terminalreporter.write_line(f"report: {state.out_dir / 'report.md'}")
