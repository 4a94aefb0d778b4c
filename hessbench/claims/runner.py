"""Run claims: one item per grid point, all seeds of the point, then the expectations.

Shared by the pytest plugin and ``hessbench claims run``. An exception in the
experiment or in evaluating its output is recorded as an *error* (a bug), never
as a claim failure; the original exception is kept so the plugin can re-raise it
with its traceback.
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
from hessbench.claims.spec import Claim, GridPoint, Setup
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
    status: str = "pending"  # "pass" | "fail" | "error" | "xfail" | "xpass"
    error: str | None = None
    seconds: float = 0.0
    exception: BaseException | None = field(default=None, repr=False, compare=False)

    @property
    def item_id(self) -> str:
        return f"{self.claim.id}[{self.point.id}]" if self.point.id else self.claim.id

    def to_dict(self) -> dict[str, Any]:
        return {"claim": self.claim.id, "point": self.point.id, "grid_values": self.point.values,
                "params": self.point.params, "seeds": list(self.setup.seeds),
                "device": self.device, "profile": self.setup.profile, "status": self.status,
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

    ``on_seed(seed)`` is called after each seed (progress bars). Exceptions become
    ``status = "error"`` with the traceback; ``KeyboardInterrupt`` propagates.
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
            result.status = "pass" if passed else "fail"
        else:  # a declared non-replication: still evaluated, still reported
            result.status = "xpass" if passed else "xfail"
    except Exception as exc:  # an experiment or declaration bug: an error, not a failure
        result.status, result.exception = "error", exc
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
        """Write figures, report.json and report.md into ``out_dir``; returns the directory."""
        from hessbench.claims.report import write_report

        out = Path(out_dir) if out_dir is not None else self.default_out_dir()
        write_report(self, out, interrupted=interrupted)
        return out

    @property
    def summary(self) -> dict[str, int]:
        counts = {"pass": 0, "fail": 0, "error": 0, "xfail": 0, "xpass": 0}
        for r in self.results:
            counts[r.status] = counts.get(r.status, 0) + 1
        return counts
