"""CI regression gate: deterministic figures against a committed baseline, and time
ratios measured in one process (both measured by :mod:`hessbench.bench.measure`, specified
in :mod:`hessbench.bench.specs`).

Two kinds of checks, both immune to a slow or noisy machine:

* **track** figures (matvec counts, relative errors; :mod:`hessbench.bench.figures`) are
  functions of the seeds only. A figure fails when it is worse than the baseline
  beyond its stated float tolerance: ``now > baseline * (1 + rtol) + atol`` (lower is
  better for every figure). Counts are compared exactly.
* **ratio** figures (hessbench time / reference time, e.g. HVP / gradient, hessbench
  top-5 / PyHessian top-5) are timed interleaved in the same process, as the ratio of
  the fastest of ``repeats`` samples (load only adds time; see
  :func:`hessbench.bench.timing.time_ratio`); a ratio fails when
  ``now > baseline * (1 + RATIO_MARGIN)``.

Peer figures (PyHessian's) and the ratios marked ungated in
:data:`~hessbench.bench.specs.RATIO` are shown but never gate. The targets (e.g. HVP <= 3x
gradient on ResNet-18) are evaluated by :func:`target_checks`; they fail the gate only
with ``--targets``.
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from hessbench.bench.specs import (RATIO, RATIO_MARGIN, STREAM_PARITY, TRACK, RatioSpec,
                                   TrackSpec)

__all__ = ["Check", "compare", "target_checks", "load_baseline", "write_baseline"]


@dataclass(frozen=True)
class Check:
    """One gate line: the figure now, its baseline, the limit it must not exceed."""

    name: str
    kind: str            # "track" | "ratio" | "peer" | "info" | "target"
    description: str
    now: float
    baseline: float | None
    limit: float | None
    status: str          # "pass" | "fail" | "improved" | "info" | "new" | "missing"

    @property
    def failed(self) -> bool:
        return self.status in ("fail", "missing")


def _status(now: float, baseline: float, limit: float) -> str:
    if math.isnan(now) or now > limit:
        return "fail"
    return "improved" if now < baseline else "pass"


def _check(name: str, kind: str, description: str, gated: bool, now: float | None,
           base: float | None, rtol: float, atol: float) -> Check:
    """One figure against its baseline: missing, new, info (ungated), or judged against
    the limit base * (1 + rtol) + atol."""
    if now is None:
        return Check(name, kind, description, math.nan, base, None,
                     "missing" if gated else "info")
    if base is None:
        return Check(name, kind, description, now, None, None, "new")
    if not gated:
        return Check(name, kind, description, now, base, None, "info")
    limit = base * (1 + rtol) + atol
    return Check(name, kind, description, now, base, limit, _status(now, base, limit))


def compare(track: Mapping[str, float], ratios: Mapping[str, float],
            baseline: Mapping) -> list[Check]:
    """Checks of measured figures against ``baseline`` ({"track": {...}, "ratios": {...}}).

    A figure in the baseline but not measured is "missing" (fails); one measured but
    not in the baseline is "new" (passes; add it with ``--update``).
    """
    base_track, base_ratio = baseline.get("track", {}), baseline.get("ratios", {})
    checks = []
    for name in sorted(set(track) | set(base_track)):
        spec = TRACK.get(name, TrackSpec(name, ""))
        checks.append(_check(name, "track" if spec.gated else "peer", spec.description,
                             spec.gated, track.get(name), base_track.get(name),
                             spec.rtol, spec.atol))
    for name in sorted(set(ratios) | set(base_ratio)):
        spec = RATIO.get(name, RatioSpec(""))
        checks.append(_check(name, "ratio" if spec.gated else "info", spec.description,
                             spec.gated, ratios.get(name), base_ratio.get(name),
                             RATIO_MARGIN, 0.0))
    return checks


def target_checks(track: Mapping[str, float], ratios: Mapping[str, float]) -> list[Check]:
    """The performance targets, where the measured figures cover them: hb.eigsh top-5 in
    fewer matvecs than PyHessian's top-5 and to 1e-6, Hutch++ at most a third of
    Hutchinson's matvecs for 1%, one ResNet-18 HVP within 3x a gradient, streamed HVPs
    (a list, a DataLoader) at or below PyHessian's, float32 eigsh reporting
    converged=False below its noise floor and float64 eigsh reaching 1e-10."""
    out = []

    def add(name: str, desc: str, now: float | None, limit: float, strict: bool = False) -> None:
        if now is None:
            return
        ok = now < limit if strict else now <= limit
        out.append(Check(name, "target", desc, now, None, limit, "pass" if ok else "fail"))

    if "mlp.eigsh_top5_matvecs" in track and "mlp.pyhessian_top5_hvps" in track:
        add("target.top5_matvecs", "hb top-5 matvecs (1e-6) < PyHessian top-5 HVPs",
            track["mlp.eigsh_top5_matvecs"], track["mlp.pyhessian_top5_hvps"], strict=True)
        add("target.top5_rel_err", "hb top-5 max rel. error <= 1e-6",
            track.get("mlp.eigsh_top5_rel_err"), 1e-6)
    if "mlp.trace_hutchpp_matvecs_1pct" in track:
        add("target.hutchpp_1pct", "Hutch++ matvecs for 1% <= Hutchinson's / 3",
            track["mlp.trace_hutchpp_matvecs_1pct"],
            track["mlp.trace_hutchinson_matvecs_1pct"] / 3)
    add("target.resnet18_hvp", "ResNet-18 HVP <= 3x gradient (CPU)",
        ratios.get("resnet18.hvp_over_grad"), 3.0)
    # parity with PyHessian, within the ~10 % noise of a same-run ratio on a loaded machine
    add("target.streamed_hvp", "streamed HVP (list) <= 1.1x PyHessian dataloader_hv_product",
        ratios.get("mlp.streamed_hvp_over_pyhessian"), STREAM_PARITY)
    add("target.loader_hvp", "streamed HVP (DataLoader) <= 1.1x PyHessian, same loader",
        ratios.get("mlp.loader_hvp_over_pyhessian"), STREAM_PARITY)
    add("target.float32_honest", "float32 eigsh below its noise floor: converged=False",
        track.get("mlp.eigsh_f32_below_floor_converged"), 0.0)
    add("target.float64_tight", "float64 eigsh tol 1e-10: converged",
        track.get("mlp.eigsh_f64_tight_unconverged"), 0.0)
    add("target.float64_tight_err", "float64 eigsh tol 1e-10: max rel. error <= 1e-10",
        track.get("mlp.eigsh_f64_tight_rel_err"), 1e-10)
    return out


def load_baseline(path: str | Path) -> dict:
    """Read and validate a baseline JSON written by :func:`write_baseline`: every error
    (missing, unreadable, not JSON, wrong shape, a figure that is not a number, no figures
    at all) names the file and the fix."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no baseline at {path}; create it with "
                                f"`hessbench bench gate --update --baseline {path}`")
    fix = f"rewrite it with `hessbench bench gate --update --baseline {path}`"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise ValueError(f"{path}: not valid JSON ({exc}); {fix}") from None
    if not isinstance(data, dict) or not isinstance(data.get("track"), dict) \
            or not isinstance(data.get("ratios"), dict) \
            or not isinstance(data.get("meta", {}), dict):
        raise ValueError(f"{path}: not a hessbench baseline (needs 'track' and 'ratios' "
                         f"objects); {fix}")
    for kind in ("track", "ratios"):
        data[kind] = {k: _figure(v, f"{path}: {kind}.{k}", fix) for k, v in data[kind].items()}
    if not data["track"] and not data["ratios"]:
        raise ValueError(f"{path}: the baseline holds no figures, so it gates nothing; {fix}")
    return data


def _figure(value: object, where: str, fix: str) -> float:
    """A baseline figure as a float: a number, or a string such as "inf" (JSON has no inf)."""
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
        try:
            return float(value)
        except ValueError:
            pass
    raise ValueError(f"{where}: {value!r} is not a number; {fix}")


def write_baseline(path: str | Path, track: Mapping[str, float], ratios: Mapping[str, float],
                   meta: Mapping[str, object]) -> None:
    """Write figures and their provenance as sorted, indented JSON (diff-friendly)."""
    def clean(d: Mapping[str, float]) -> dict[str, float | int | str]:
        return {k: (int(v) if float(v).is_integer() else float(v)) if math.isfinite(v)
                else str(v) for k, v in sorted(d.items())}

    data = {"meta": dict(meta), "track": clean(track), "ratios": clean(ratios)}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
