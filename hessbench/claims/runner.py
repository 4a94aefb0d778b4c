"""Run claims: one item per grid point of the claim and of each of its controls, all
seeds of the point, then the claim's expectations.

Shared by the pytest plugin and ``hessbench claims run``. An exception in the
experiment or in evaluating its output (``SystemExit`` too; ``KeyboardInterrupt``
stops the run) is recorded as an *error* (a bug), never as a claim failure; the
original exception is kept so the plugin can re-raise it with its traceback. A control item passes when every expectation it lists in
``expect_fail`` fails, and fails when one of them holds. A :class:`ClaimSession`
holds the results of one run (optionally with the seeds overridden), rejects a
second claim file with an id already in the run, and writes its report
(:mod:`hessbench.claims.report`, given plain data), never over one with more.
"""
from __future__ import annotations

import json
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hessbench.claims.expectations import Verdict, evaluate
from hessbench.claims.errors import ClaimSpecError
from hessbench.claims.known import measured_miss
from hessbench.claims.latest import mark_latest
from hessbench.claims.report import environment, loses_items, write_report
from hessbench.claims.spec import Claim, GridPoint, Setup
from hessbench.claims.status import Status, count_statuses, summary_line
from hessbench.experiments.registry import Measurement, get_experiment
from hessbench.plain import to_native

__all__ = ["SeedRecord", "ItemResult", "ClaimSession", "run_item", "to_native",
           "sigterm_interrupts"]


@dataclass(frozen=True)
class SeedRecord:
    """What one seed of one grid point produced."""

    seed: int
    seconds: float
    metrics: dict[str, Any]
    figure_data: dict[str, Any]
    reused_from: str | None = None  # the item whose identical run this record reuses


@dataclass
class ItemResult:
    """One grid point of one claim, or of one of its controls (``setup.control``): its
    records, verdicts and status."""

    claim: Claim
    setup: Setup
    point: GridPoint
    device: str
    records: list[SeedRecord] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    status: Status = Status.PENDING
    error: str | None = None
    seconds: float = 0.0
    exception: BaseException | None = field(default=None, repr=False, compare=False)

    @property
    def item_id(self) -> str:
        """The item's id (:meth:`Claim.item_id <hessbench.claims.spec.Claim.item_id>`), e.g.
        ``demo[slope=1.0]`` or ``demo[control-gd-slope=1.0]``."""
        return self.claim.item_id(self.setup, self.point)

    @property
    def expect_fail(self) -> tuple[str, ...]:
        """The expectations that must fail (a control's ``expect_fail``; none for a claim)."""
        return () if self.setup.control is None else self.setup.control.expect_fail

    @property
    def held(self) -> list[str]:
        """The ``expect_fail`` expectations that held: what makes a control fail."""
        return [v.name for v in self.verdicts if v.passed and v.name in self.expect_fail]

    def to_dict(self) -> dict[str, Any]:
        """The item as plain data (``report.json``'s ``items[]``, and what the tables show)."""
        s, ctl = self.setup, self.setup.control
        verdicts = [v.to_dict() for v in self.verdicts]
        note = s.known_failure_at(self.point)
        return {"item": self.item_id, "claim": self.claim.id, "kind": s.kind,
                "control": None if ctl is None else ctl.name, "label": s.label(self.point),
                "point": self.point.id, "grid_values": self.point.values,
                "params": self.point.params, "seeds": list(s.seeds),
                "declared_seeds": list(s.declared_seeds or s.seeds),
                "seeds_override": None if s.declared_seeds is None else list(s.seeds),
                "expect_fail": list(self.expect_fail), "held": self.held,
                "device": self.device, "profile": s.profile, "status": self.status.value,
                "known_failure": note,
                "known_failure_measured": None if note is None else measured_miss(verdicts),
                "seconds": self.seconds, "error": self.error,
                "records": [{"seed": r.seed, "seconds": r.seconds, "metrics": r.metrics,
                             "figure_data": r.figure_data, "reused_from": r.reused_from}
                            for r in self.records],
                "verdicts": verdicts}


def _check_metric(name: str, value: Any) -> None:
    ok = isinstance(value, (bool, int, float)) or (
        isinstance(value, list) and all(_is_numeric_tree(v) for v in value))
    if not ok:
        raise TypeError(f"metric {name!r} must be a number, a bool or a (nested) list of numbers, "
                        f"got {value!r:.80}")


def _is_numeric_tree(v: Any) -> bool:
    if isinstance(v, list):
        return all(_is_numeric_tree(x) for x in v)
    return isinstance(v, (bool, int, float))


def _measure(claim: Claim, point: GridPoint, seed: int, device: Any) -> SeedRecord:
    exp = get_experiment(claim.experiment)
    start = time.perf_counter()
    out = exp(dict(point.params), seed, device)
    seconds = time.perf_counter() - start
    if not isinstance(out, Measurement):
        raise TypeError(f"experiment {claim.experiment!r} returned {type(out).__name__}; "
                        "it must return hessbench.experiments.registry.Measurement")
    metrics = to_native(dict(out.metrics), "metrics")
    for name, value in metrics.items():
        _check_metric(name, value)
    if exp.metrics is not None and set(metrics) - exp.metrics:
        raise TypeError(f"experiment {claim.experiment!r} returned undeclared metrics "
                        f"{sorted(set(metrics) - exp.metrics)}; add them to metrics=[...]")
    return SeedRecord(seed=seed, seconds=seconds, metrics=metrics,
                      figure_data=to_native(dict(out.figure_data), "figure_data"))


#: (experiment, params as canonical JSON, seed, device) -> (item id, its record)
RunCache = dict[tuple[str, str, int, str], tuple[str, SeedRecord]]


def _measure_cached(claim: Claim, point: GridPoint, seed: int, device: Any, item_id: str,
                    cache: RunCache | None) -> SeedRecord:
    """:func:`_measure`, or the record of an identical earlier run of this session
    (same experiment, params, seed and device; experiments are deterministic in these),
    marked ``reused_from`` with 0 seconds of its own."""
    if cache is None:
        return _measure(claim, point, seed, device)
    key = (claim.experiment, json.dumps(point.params, sort_keys=True, default=repr), seed,
           str(device))
    if key in cache:
        first, record = cache[key]
        return replace(record, seconds=0.0, reused_from=first)
    record = _measure(claim, point, seed, device)
    cache[key] = (item_id, record)
    return record


def run_item(claim: Claim, setup: Setup, point: GridPoint, device: Any,
             on_seed: Callable[[int], None] | None = None,
             cache: RunCache | None = None) -> ItemResult:
    """Run every seed of ``point`` on ``device`` and evaluate the claim's expectations.

    With ``cache`` (a session's), a seed whose experiment, params and device match an
    earlier run reuses that run's record (:func:`_measure_cached`).

    ``on_seed(seed)`` is called after each seed (progress bars). The status is
    ``PASS``/``FAIL``, or ``KNOWN_FAILURE_PASSED``/``KNOWN_FAILURE`` where the profile
    declares a known failure covering ``point``; for a control (``setup.control``, every
    expectation still evaluated) ``PASS`` when each of its ``expect_fail`` expectations
    failed, else ``FAIL``. An exception makes it ``ERROR`` with the traceback, a
    ``SystemExit`` or other ``BaseException`` too, so the other items and the report are
    kept (``KeyboardInterrupt`` propagates).
    """
    result = ItemResult(claim=claim, setup=setup, point=point, device=str(device))
    start = time.perf_counter()
    try:
        for seed in setup.seeds:
            result.records.append(_measure_cached(claim, point, seed, device, result.item_id,
                                                  cache))
            if on_seed is not None:
                on_seed(seed)
        metrics = [r.metrics for r in result.records]
        result.verdicts = [evaluate(e, setup.seeds, metrics, point.params)
                           for e in claim.expectations]
        passed = all(v.passed for v in result.verdicts)
        if setup.control is not None:  # the claim's test must not pass without the effect
            result.status = Status.FAIL if result.held else Status.PASS
        elif setup.known_failure_at(point) is None:
            result.status = Status.PASS if passed else Status.FAIL
        else:  # a declared non-replication: still evaluated, still reported
            result.status = Status.KNOWN_FAILURE_PASSED if passed else Status.KNOWN_FAILURE
    except KeyboardInterrupt:  # Ctrl-C (and SIGTERM in ``claims run``) stops the run
        raise
    except BaseException as exc:  # a bug (SystemExit too): an error, not a failure
        result.status, result.exception = Status.ERROR, exc
        result.error = "".join(traceback.format_exception(exc))
    finally:
        result.seconds = time.perf_counter() - start
    return result


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Within the block SIGTERM raises ``KeyboardInterrupt``, as Ctrl-C does, so a run that
    is terminated still reports its finished items (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class ClaimSession:
    """One run of claims: profile, device, the results so far and the claims they belong to.

    ``seeds``, when given, replace the declared seeds of every claim and control item of
    the run (distinct non-negative integers; ``ValueError`` otherwise): such a run is not
    the declared one, and its report says so.
    """

    def __init__(self, profile: str, device: str = "auto", root: Path | str = ".",
                 seeds: Sequence[int] | None = None) -> None:
        from hessbench.utils import resolve_device

        if seeds is not None and (not seeds or len(set(seeds)) != len(seeds)
                                  or min(seeds) < 0):
            raise ValueError(f"seeds must be distinct non-negative integers, got {list(seeds)}")
        self.profile = profile
        self.requested_device = device
        self.device = resolve_device(device)
        self.root = Path(root)
        self.seeds_override = None if seeds is None else tuple(seeds)
        self.started = datetime.now(timezone.utc)
        self.results: list[ItemResult] = []
        self._files: dict[str, Path] = {}  # claim id -> the file that declares it
        self._runs: RunCache = {}  # identical runs are measured once per session

    def plan(self, claim: Claim) -> list[tuple[Setup, GridPoint]]:
        """Every item of ``claim`` under this session's profile: the claim's grid points,
        then each control's (:meth:`Claim.setups <hessbench.claims.spec.Claim.setups>`),
        with the session's seeds when it overrides them. ``ClaimSpecError`` naming both
        files when another claim of this run has the same id."""
        first = self._files.setdefault(claim.id, claim.path)
        if first.resolve() != claim.path.resolve():
            raise ClaimSpecError(claim.path, "id", f"duplicate claim id {claim.id!r}, also "
                                 f"declared in {first}; claim ids must be unique within a run")
        setups = claim.setups(self.profile)
        if self.seeds_override is not None:
            setups = [s.with_seeds(self.seeds_override) for s in setups]
        return [(s, p) for s in setups for p in s.points()]

    def run(self, claim: Claim, setup: Setup, point: GridPoint,
            on_seed: Callable[[int], None] | None = None) -> ItemResult:
        """Run one item of :meth:`plan` and record it."""
        result = run_item(claim, setup, point, self.device, on_seed, self._runs)
        self.results.append(result)
        return result

    @property
    def claims(self) -> dict[str, Claim]:
        """The claims with results, by id, in first-run order."""
        return {r.claim.id: r.claim for r in self.results}

    def default_out_dir(self) -> Path:
        """``<root>/results/claims/<UTC timestamp>`` (a suffix keeps it unique)."""
        return _unused(self.root / "results" / "claims" / self._stamp)

    @property
    def _stamp(self) -> str:
        return self.started.strftime("%Y%m%d-%H%M%S")

    def write_report(self, out_dir: Path | str | None = None, interrupted: bool = False) -> Path:
        """Write figures, report.json and report.md into ``out_dir`` (default
        :meth:`default_out_dir`); returns the directory. A report never replaces one with
        less (:func:`~hessbench.claims.report.loses_items`): then it goes to a new
        ``<out_dir>-<UTC timestamp>`` beside it. A run in ``<root>/results/claims`` becomes
        its ``latest`` (:func:`~hessbench.claims.latest.mark_latest`)."""
        out = Path(out_dir) if out_dir is not None else self.default_out_dir()
        if loses_items(out, [r.item_id for r in self.results]):
            out = _unused(out.with_name(f"{out.name}-{self._stamp}"))
        run = {"started": self.started.isoformat(), "profile": self.profile,
               "device": str(self.device), "requested_device": self.requested_device,
               "seeds_override": None if self.seeds_override is None
               else list(self.seeds_override),
               "environment": environment(self.device, self.root)}
        write_report(out, run, [c.to_dict(self.profile) for c in self.claims.values()],
                     [r.to_dict() for r in self.results], interrupted=interrupted)
        mark_latest(self.root / "results" / "claims", out)
        return out

    @property
    def summary(self) -> dict[str, int]:
        """How many results have each status (:func:`~hessbench.claims.status.count_statuses`)."""
        return count_statuses(r.status for r in self.results)

    def summary_line(self) -> str:
        """``N claim items (M controls): a pass, ...`` of the results so far."""
        controls = sum(r.setup.control is not None for r in self.results)
        return summary_line(self.summary, len(self.results), controls)


def _unused(base: Path) -> Path:
    """``base``, or ``base-1``, ``base-2``, ... the first that does not exist."""
    out, n = base, 1
    while out.exists():
        out, n = base.with_name(f"{base.name}-{n}"), n + 1
    return out
