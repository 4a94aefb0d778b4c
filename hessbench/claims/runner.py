"""Run claims: one item per grid point, all seeds of the point, then the expectations.

Shared by the pytest plugin and ``hessbench claims run``. An exception in the
experiment or in evaluating its output is recorded as an *error* (a bug), never
as a claim failure; the original exception is kept so the plugin can re-raise it
with its traceback. A :class:`ClaimSession` holds the results of one run and writes
its report (:mod:`hessbench.claims.report`, given plain data).
"""
from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hessbench.claims.expectations import Verdict, evaluate
from hessbench.claims.report import environment, write_report
from hessbench.claims.spec import Claim, GridPoint, Setup
from hessbench.claims.status import Status, count_statuses
from hessbench.experiments.registry import Measurement, get_experiment

__all__ = ["SeedRecord", "ItemResult", "ClaimSession", "run_item", "to_native"]


@dataclass(frozen=True)
class SeedRecord:
    """What one seed of one grid point produced."""

    seed: int
    seconds: float
    metrics: dict[str, Any]
    figure_data: dict[str, Any]


@dataclass
class ItemResult:
    """One grid point of one claim: its records, verdicts and status."""

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
        """``<claim id>[<grid point>]``, or the claim id alone for a claim without a grid."""
        return f"{self.claim.id}[{self.point.id}]" if self.point.id else self.claim.id

    def to_dict(self) -> dict[str, Any]:
        """The item as plain data (``report.json``'s ``items[]``, and what the tables show)."""
        return {"item": self.item_id, "claim": self.claim.id, "point": self.point.id,
                "grid_values": self.point.values, "params": self.point.params,
                "seeds": list(self.setup.seeds), "device": self.device,
                "profile": self.setup.profile, "status": self.status.value,
                "known_failure": self.setup.known_failure,
                "seconds": self.seconds, "error": self.error,
                "records": [{"seed": r.seed, "seconds": r.seconds, "metrics": r.metrics,
                             "figure_data": r.figure_data} for r in self.records],
                "verdicts": [v.to_dict() for v in self.verdicts]}


def to_native(value: Any, where: str) -> Any:
    """``value`` as plain Python (dict / list / str / int / float / bool / None); numpy and
    torch scalars and arrays become numbers and lists. ``TypeError`` naming ``where``
    for anything else."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"{where}: keys must be strings, got {k!r}")
            out[k] = to_native(v, f"{where}.{k}")
        return out
    if isinstance(value, (list, tuple)):
        return [to_native(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if hasattr(value, "detach"):  # torch.Tensor
        value = value.detach().cpu().numpy()
    if hasattr(value, "tolist") and hasattr(value, "dtype"):  # numpy scalar or array
        return to_native(value.tolist(), where)
    raise TypeError(f"{where}: {type(value).__name__} is not JSON-serialisable; return numbers, "
                    "bools, strings, lists or dicts")


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


def run_item(claim: Claim, setup: Setup, point: GridPoint, device: Any,
             on_seed: Callable[[int], None] | None = None) -> ItemResult:
    """Run every seed of ``point`` on ``device`` and evaluate the claim's expectations.

    ``on_seed(seed)`` is called after each seed (progress bars). The status is
    ``PASS``/``FAIL``, or ``XPASS``/``XFAIL`` under a profile that declares a known
    failure; an exception makes it ``ERROR`` with the traceback (``KeyboardInterrupt``
    propagates).
    """
    result = ItemResult(claim=claim, setup=setup, point=point, device=str(device))
    start = time.perf_counter()
    try:
        for seed in setup.seeds:
            result.records.append(_measure(claim, point, seed, device))
            if on_seed is not None:
                on_seed(seed)
        metrics = [r.metrics for r in result.records]
        result.verdicts = [evaluate(e, setup.seeds, metrics, point.params)
                           for e in claim.expectations]
        passed = all(v.passed for v in result.verdicts)
        if setup.known_failure is None:
            result.status = Status.PASS if passed else Status.FAIL
        else:  # a declared non-replication: still evaluated, still reported
            result.status = Status.XPASS if passed else Status.XFAIL
    except Exception as exc:  # an experiment or declaration bug: an error, not a failure
        result.status, result.exception = Status.ERROR, exc
        result.error = "".join(traceback.format_exception(exc))
    finally:
        result.seconds = time.perf_counter() - start
    return result


class ClaimSession:
    """One run of claims: profile, device, the results so far and the claims they belong to."""

    def __init__(self, profile: str, device: str = "auto", root: Path | str = ".") -> None:
        from hessbench.utils import resolve_device

        self.profile = profile
        self.requested_device = device
        self.device = resolve_device(device)
        self.root = Path(root)
        self.started = datetime.now(timezone.utc)
        self.results: list[ItemResult] = []

    def run(self, claim: Claim, point: GridPoint,
            on_seed: Callable[[int], None] | None = None) -> ItemResult:
        """Run one grid point of ``claim`` under this session's profile and record it."""
        result = run_item(claim, claim.setup(self.profile), point, self.device, on_seed)
        self.results.append(result)
        return result

    @property
    def claims(self) -> dict[str, Claim]:
        """The claims with results, by id, in first-run order."""
        return {r.claim.id: r.claim for r in self.results}

    def default_out_dir(self) -> Path:
        """``<root>/results/claims/<UTC timestamp>`` (a suffix keeps it unique)."""
        base = self.root / "results" / "claims" / self.started.strftime("%Y%m%d-%H%M%S")
        out, n = base, 1
        while out.exists():
            out, n = base.with_name(f"{base.name}-{n}"), n + 1
        return out

    def write_report(self, out_dir: Path | str | None = None, interrupted: bool = False) -> Path:
        """Write figures, report.json and report.md into ``out_dir`` (default
        :meth:`default_out_dir`); returns the directory."""
        out = Path(out_dir) if out_dir is not None else self.default_out_dir()
        run = {"started": self.started.isoformat(), "profile": self.profile,
               "device": str(self.device), "requested_device": self.requested_device,
               "environment": environment(self.device, self.root)}
        write_report(out, run, [c.to_dict(self.profile) for c in self.claims.values()],
                     [r.to_dict() for r in self.results], interrupted=interrupted)
        return out

    @property
    def summary(self) -> dict[str, int]:
        """How many results have each status (:func:`~hessbench.claims.status.count_statuses`)."""
        return count_statuses(r.status for r in self.results)
