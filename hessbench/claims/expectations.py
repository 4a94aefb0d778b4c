"""The expectation vocabulary: parsing, validation and evaluation over seeds.

Each relation is registered once in :data:`RELATIONS` with its fields and a check.
Per-seed relations (``equals``, ``between``, ``less_than``, ``greater_than``,
``ordered``, ``all_less_than``, ``all_greater_than``, ``linear_fit``) are checked
on each seed and combined by ``over_seeds``; pooled relations
(``confidence_bound``, ``proportion_greater``) use all seeds at once.
Every evaluation yields a :class:`Verdict` whose message shows measured against
expected and, on failure, by how much it missed. See ``docs/claims-format.md``.
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hessbench import stats
from hessbench.claims.errors import ClaimSpecError, EvaluationError
from hessbench.claims.status import Status

__all__ = ["Check", "Verdict", "Relation", "RELATIONS", "Expectation", "parse_expectation",
           "evaluate", "fmt"]

PLACEHOLDER = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]*)\}$")
COMMON_KEYS = ("name", "relation", "reason", "over_seeds")


def fmt(x: Any) -> str:
    """Compact human-readable number: ints as is, floats with 4 significant digits."""
    if isinstance(x, (bool, np.bool_)):
        return str(bool(x))
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    if isinstance(x, (float, np.floating)):
        return f"{float(x):.4g}"
    return str(x)


@dataclass(frozen=True)
class Check:
    """Outcome of one relation on one set of values (one seed, the seed mean, or the pool).

    ``miss``: how far from passing, in the relation's units (failures only);
    ``why``: the failure explained with numbers; ``numbers``: values for report.json.
    """

    passed: bool
    measured: str
    expected: str
    miss: float | None = None
    why: str = ""
    numbers: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Verdict:
    """The evaluated expectation of one grid point (all its seeds)."""

    name: str
    relation: str
    metrics: tuple[str, ...]
    measured: str
    expected: str
    passed: bool
    message: str
    reason: str
    over_seeds: str
    details: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """The verdict as plain data (``report.json``); ``verdict`` is ``"pass"`` or ``"fail"``."""
        return {"name": self.name, "relation": self.relation, "metrics": list(self.metrics),
                "measured": self.measured, "expected": self.expected,
                "verdict": (Status.PASS if self.passed else Status.FAIL).value,
                "message": self.message, "reason": self.reason, "over_seeds": self.over_seeds,
                "details": self.details}


# ----------------------------------------------------------------------------- fields
NUMBER_FIELDS = {"value", "low", "high", "abs_tol", "rel_tol", "int_tol", "min_r2",
                 "max_intercept_frac", "level", "alpha"}
CHOICE_FIELDS = {"slope": ("positive", "negative"), "order": ("increasing", "decreasing"),
                 "bound": ("upper", "lower")}
METRIC_FIELDS = {"metric", "x", "y", "a", "b"}
COUNT_FIELDS = {"n_a", "n_b"}  # a metric name, a number, or "{param}"


def _number_problem(key: str, v: float) -> str | None:
    """Range constraint of a numeric field, or None when ``v`` is fine."""
    if not math.isfinite(v):
        return f"must be finite, got {v}"
    if key in ("abs_tol", "rel_tol", "max_intercept_frac") and v < 0:
        return f"must be >= 0, got {v}"
    if key == "int_tol" and (v < 0 or v != int(v)):
        return f"must be a non-negative integer, got {v}"
    if key in ("level", "alpha") and not 0 < v < 1:
        return f"must be in (0, 1), got {v}"
    if key == "min_r2" and v > 1:
        return f"must be <= 1 (R^2 never exceeds 1), got {v}"
    return None


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# ---------------------------------------------------------------------- metric values
def _scalar(name: str, v: Any) -> float:
    if isinstance(v, (bool, int, float)):
        return float(v)
    raise EvaluationError(f"metric {name!r} must be a number for this relation, got "
                          f"{type(v).__name__}{f' of length {len(v)}' if isinstance(v, list) else ''}")


def _array(name: str, v: Any) -> np.ndarray:
    """The elements of a (possibly nested, possibly ragged) list metric, flattened."""
    if not isinstance(v, list):
        raise EvaluationError(f"metric {name!r} must be a list of numbers for this relation, "
                              f"got {type(v).__name__}")
    flat: list[float] = []
    stack = [v]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        elif isinstance(item, (bool, int, float)):
            flat.append(float(item))
        else:
            raise EvaluationError(f"metric {name!r} holds {item!r}, not a number")
    return np.asarray(flat, dtype=np.float64)


# ------------------------------------------------------------------------- relations
CheckFn = Callable[[Mapping[str, Any], Mapping[str, Any]], Check]
PooledFn = Callable[[Sequence[Mapping[str, Any]], Mapping[str, Any]], Check]


@dataclass(frozen=True)
class Relation:
    """A relation of the vocabulary.

    ``metric_fields`` name metrics (``metrics`` is a list of names); exactly one of
    ``one_of`` must be given; ``pooled`` relations get every seed's values at once.
    """

    name: str
    check: CheckFn | PooledFn
    metric_fields: tuple[str, ...]
    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    one_of: tuple[str, ...] = ()
    at_least_one_of: tuple[str, ...] = ()
    pooled: bool = False

    @property
    def fields(self) -> set[str]:
        return {*self.metric_fields, *self.required, *self.optional, *self.one_of,
                *self.at_least_one_of}


RELATIONS: dict[str, Relation] = {}


def _relation(name: str, **kw: Any) -> Callable[[Callable[..., Check]], Callable[..., Check]]:
    def register(fn: Callable[..., Check]) -> Callable[..., Check]:
        RELATIONS[name] = Relation(name=name, check=fn, **kw)
        return fn
    return register


@_relation("equals", metric_fields=("metric",), required=("value",),
           one_of=("abs_tol", "rel_tol", "int_tol"))
def _equals(v: Mapping[str, Any], f: Mapping[str, Any]) -> Check:
    """|m - value| <= abs_tol, or <= rel_tol * |value|, or integer m with |m - value| <= int_tol."""
    m, target = _scalar(f["metric"], v[f["metric"]]), f["value"]
    if "abs_tol" in f:
        tol, expected = f["abs_tol"], f"{fmt(target)} ± {fmt(f['abs_tol'])}"
    elif "rel_tol" in f:
        tol = f["rel_tol"] * abs(target)
        expected = f"{fmt(target)} ± {fmt(100 * f['rel_tol'])}% (± {fmt(tol)})"
    else:
        tol, expected = f["int_tol"], f"{fmt(target)} ± {fmt(int(f['int_tol']))} (integer)"
        if not m.is_integer():
            return Check(False, fmt(m), expected, None, f"measured {fmt(m)} is not an integer",
                         {"value": m, "target": target})
    err = abs(m - target)
    passed = err <= tol
    why = "" if passed else (f"|{fmt(m)} - {fmt(target)}| = {fmt(err)} exceeds the tolerance "
                             f"{fmt(tol)}, missed by {fmt(err - tol)}")
    return Check(passed, fmt(m), expected, None if passed else err - tol, why,
                 {"value": m, "target": target, "tol": tol, "error": err})


@_relation("between", metric_fields=("metric",), required=("low", "high"))
def _between(v: Mapping[str, Any], f: Mapping[str, Any]) -> Check:
    """low <= m <= high."""
    m, lo, hi = _scalar(f["metric"], v[f["metric"]]), f["low"], f["high"]
    expected = f"[{fmt(lo)}, {fmt(hi)}]"
    miss = lo - m if m < lo else m - hi if m > hi else None
    passed = miss is None and not math.isnan(m)
    why = "" if passed else f"{fmt(m)} is outside {expected}, missed by {fmt(miss)}"
    return Check(passed, fmt(m), expected, miss, why, {"value": m, "low": lo, "high": hi})


def _one_sided(less: bool) -> Callable[[Mapping[str, Any], Mapping[str, Any]], Check]:
    op = "<" if less else ">"

    def check(v: Mapping[str, Any], f: Mapping[str, Any]) -> Check:
        m, t = _scalar(f["metric"], v[f["metric"]]), f["value"]
        passed = m < t if less else m > t
        miss = None if passed else (m - t if less else t - m)
        why = "" if passed else f"{fmt(m)} is not {op} {fmt(t)}, missed by {fmt(miss)}"
        return Check(passed, fmt(m), f"{op} {fmt(t)}", miss, why, {"value": m, "target": t})

    check.__doc__ = f"m {op} value (strict)."
    return check


_relation("less_than", metric_fields=("metric",), required=("value",))(_one_sided(True))
_relation("greater_than", metric_fields=("metric",), required=("value",))(_one_sided(False))


@_relation("ordered", metric_fields=("metrics",), required=("order",))
def _ordered(v: Mapping[str, Any], f: Mapping[str, Any]) -> Check:
    """metrics[0] > metrics[1] > ... (decreasing) or < (increasing), strictly."""
    names = f["metrics"]
    vals = [_scalar(n, v[n]) for n in names]
    op = ">" if f["order"] == "decreasing" else "<"
    expected = f" {op} ".join(names)
    measured = ", ".join(f"{n}={fmt(x)}" for n, x in zip(names, vals))
    misses = []
    for (n1, a), (n2, b) in zip(zip(names, vals), zip(names[1:], vals[1:])):
        if not (a > b if op == ">" else a < b):
            misses.append((n1, a, n2, b, b - a if op == ">" else a - b))
    why = "; ".join(f"{n1}={fmt(a)} is not {op} {n2}={fmt(b)} (missed by {fmt(d)})"
                    for n1, a, n2, b, d in misses)
    return Check(not misses, measured, expected, max((d for *_, d in misses), default=None), why,
                 {"values": dict(zip(names, vals))})


def _all_compare(less: bool) -> Callable[[Mapping[str, Any], Mapping[str, Any]], Check]:
    op = "<" if less else ">"

    def check(v: Mapping[str, Any], f: Mapping[str, Any]) -> Check:
        arr, t = _array(f["metric"], v[f["metric"]]), f["value"]
        expected = f"all {op} {fmt(t)}"
        if arr.size == 0:
            return Check(False, "empty array", expected, None, "the array metric is empty", {})
        i = int(np.argmax(arr) if less else np.argmin(arr))
        worst = float(arr[i])
        bad = int(np.count_nonzero(~(arr < t if less else arr > t)))
        measured = f"{'max' if less else 'min'} {fmt(worst)} (index {i} of {arr.size})"
        miss = None if bad == 0 else (worst - t if less else t - worst)
        why = "" if bad == 0 else (f"{bad} of {arr.size} elements are not {op} {fmt(t)}; "
                                   f"worst {fmt(worst)} at index {i}, missed by {fmt(miss)}")
        return Check(bad == 0, measured, expected, miss, why,
                     {"worst": worst, "index": i, "n_violations": bad, "n": int(arr.size)})

    check.__doc__ = f"every element of the array metric {op} value."
    return check


_relation("all_less_than", metric_fields=("metric",), required=("value",))(_all_compare(True))
_relation("all_greater_than", metric_fields=("metric",), required=("value",))(_all_compare(False))


@_relation("linear_fit", metric_fields=("x", "y"),
           at_least_one_of=("slope", "min_r2", "max_intercept_frac"))
def _linear_fit(v: Mapping[str, Any], f: Mapping[str, Any]) -> Check:
    """Least-squares y = slope x + intercept; checks slope sign, R^2 >= min_r2 and
    |intercept| <= max_intercept_frac * (max(y) - min(y))."""
    expected_parts = []
    if "slope" in f:
        expected_parts.append(f"slope {'>' if f['slope'] == 'positive' else '<'} 0")
    if "min_r2" in f:
        expected_parts.append(f"R^2 >= {fmt(f['min_r2'])}")
    if "max_intercept_frac" in f:
        expected_parts.append(f"|intercept| <= {fmt(f['max_intercept_frac'])} x range(y)")
    expected = ", ".join(expected_parts)
    try:
        fit = stats.linear_fit(_array(f["x"], v[f["x"]]), _array(f["y"], v[f["y"]]))
    except ValueError as exc:
        return Check(False, "no fit", expected, None, f"cannot fit {f['y']} on {f['x']}: {exc}")
    measured = (f"slope {fmt(fit.slope)}, intercept {fmt(fit.intercept)}, R^2 {fit.r2:.4f} "
                f"(x in [{fmt(fit.x_min)}, {fmt(fit.x_max)}], n={fit.n})")
    fails: list[tuple[str, float]] = []
    if "slope" in f and not (fit.slope > 0 if f["slope"] == "positive" else fit.slope < 0):
        fails.append((f"slope {fmt(fit.slope)} is not {f['slope']}", abs(fit.slope)))
    if "min_r2" in f and not fit.r2 >= f["min_r2"]:
        fails.append((f"R^2 {fit.r2:.4f} < {fmt(f['min_r2'])}", f["min_r2"] - fit.r2))
    if "max_intercept_frac" in f:
        limit = f["max_intercept_frac"] * (fit.y_max - fit.y_min)
        if not abs(fit.intercept) <= limit:
            fails.append((f"|intercept| {fmt(abs(fit.intercept))} > {fmt(f['max_intercept_frac'])}"
                          f" x range(y) = {fmt(limit)}", abs(fit.intercept) - limit))
    why = "; ".join(f"{text} (missed by {fmt(miss)})" for text, miss in fails)
    return Check(not fails, measured, expected, fails[0][1] if fails else None, why,
                 {"slope": fit.slope, "intercept": fit.intercept, "r2": fit.r2, "n": fit.n,
                  "x_min": fit.x_min, "x_max": fit.x_max, "y_min": fit.y_min, "y_max": fit.y_max})


@_relation("confidence_bound", metric_fields=("metric",), required=("bound", "value"),
           optional=("level",), pooled=True)
def _confidence_bound(seeds: Sequence[Mapping[str, Any]], f: Mapping[str, Any]) -> Check:
    """One-sided Student-t bound (n - 1 dof) of the mean of the samples: the metric of
    every seed, an array metric contributing each element; upper bound < value, or
    lower bound > value."""
    name, level, side, t = f["metric"], f.get("level", 0.95), f["bound"], f["value"]
    samples = np.concatenate([_array(name, s[name]) if isinstance(s[name], list)
                              else np.array([_scalar(name, s[name])]) for s in seeds])
    op = "<" if side == "upper" else ">"
    expected = f"{fmt(100 * level)}% {side} bound of the mean {op} {fmt(t)}"
    try:
        b = stats.mean_confidence_bound(samples, level, side)
    except ValueError as exc:
        return Check(False, f"{samples.size} sample(s)", expected, None, str(exc))
    measured = (f"mean {fmt(b.mean)}, {fmt(100 * level)}% {side} bound {fmt(b.bound)} "
                f"(n={b.n}, s={fmt(b.std)})")
    passed = b.bound < t if side == "upper" else b.bound > t
    miss = None if passed else abs(b.bound - t)
    why = "" if passed else f"{side} bound {fmt(b.bound)} is not {op} {fmt(t)}, missed by {fmt(miss)}"
    return Check(passed, measured, expected, miss, why,
                 {"mean": b.mean, "bound": b.bound, "std": b.std, "n": b.n, "level": level})


@_relation("proportion_greater", metric_fields=("a", "b"), required=("n_a", "n_b", "alpha"),
           pooled=True)
def _proportion_greater(seeds: Sequence[Mapping[str, Any]], f: Mapping[str, Any]) -> Check:
    """Pooled one-sided two-proportion z-test of p_a > p_b (counts summed over seeds);
    passes when the p-value < alpha."""
    def total(key: str) -> int:
        spec = f[key]
        vals = ([_scalar(spec, s[spec]) for s in seeds] if isinstance(spec, str)
                else [float(spec)] * len(seeds))
        if any(x != int(x) or x < 0 for x in vals):
            raise EvaluationError(f"{key} ({spec!r}) must be non-negative integer counts, got {vals}")
        return int(sum(vals))

    ka, kb, na, nb = total("a"), total("b"), total("n_a"), total("n_b")
    expected = f"p_a > p_b, one-sided p < {fmt(f['alpha'])}"
    try:
        r = stats.two_proportion_ztest(ka, na, kb, nb)
    except ValueError as exc:
        raise EvaluationError(f"proportion_greater: {exc}") from None
    measured = (f"p_a {fmt(r.p_a)} ({ka}/{na}), p_b {fmt(r.p_b)} ({kb}/{nb}), "
                f"z {r.z:.3g}, p {r.p_value:.3g}")
    passed = r.p_value < f["alpha"]
    miss = None if passed else r.p_value - f["alpha"]
    why = "" if passed else f"p-value {r.p_value:.3g} >= alpha {fmt(f['alpha'])}"
    return Check(passed, measured, expected, miss, why,
                 {"k_a": ka, "n_a": na, "k_b": kb, "n_b": nb, "p_a": r.p_a, "p_b": r.p_b,
                  "z": r.z, "p_value": r.p_value})


# ----------------------------------------------------------------------- declaration
@dataclass(frozen=True)
class Expectation:
    """One ``[[expectations]]`` table, validated."""

    relation: str
    fields: dict[str, Any]
    reason: str
    name: str
    over_seeds: str | float  # "all", "mean", or a minimum fraction in (0, 1]

    @property
    def metric_names(self) -> list[str]:
        """The metric names the expectation reads (numbers and ``"{param}"`` placeholders
        in its metric and count fields are no metrics)."""
        rel = RELATIONS[self.relation]
        names: list[str] = []
        for key in (*rel.metric_fields, *COUNT_FIELDS):
            val = self.fields.get(key)
            if key == "metrics":
                names.extend(val)
            elif isinstance(val, str) and not PLACEHOLDER.match(val):
                names.append(val)
        return names

    @property
    def placeholders(self) -> set[str]:
        """The param names of the ``"{name}"`` fields."""
        return {m.group(1) for v in self.fields.values() if isinstance(v, str)
                for m in [PLACEHOLDER.match(v)] if m}

    @property
    def over_seeds_label(self) -> str:
        """``over_seeds`` as written in reports: ``all``, ``mean`` or ``min_fraction=f``."""
        if isinstance(self.over_seeds, float):
            return f"min_fraction={fmt(self.over_seeds)}"
        return self.over_seeds


def parse_expectation(table: Any, key: str, path: Path | str,
                      declared_metrics: frozenset[str] | None) -> Expectation:
    """Validate one expectation table; ``key`` locates it (e.g. ``expectations[2]``)."""
    def err(problem: str, sub: str | None = None) -> ClaimSpecError:
        return ClaimSpecError(path, f"{key}.{sub}" if sub else key, problem)

    if not isinstance(table, dict):
        raise err(f"must be a table, got {type(table).__name__}")
    rel_name = table.get("relation")
    if not isinstance(rel_name, str) or rel_name not in RELATIONS:
        raise err(f"unknown relation {rel_name!r}; known: {', '.join(sorted(RELATIONS))}",
                  "relation")
    rel = RELATIONS[rel_name]
    unknown = set(table) - rel.fields - set(COMMON_KEYS)
    if unknown:
        allowed = ", ".join(sorted(rel.fields | set(COMMON_KEYS)))
        raise err(f"unknown key(s) {sorted(unknown)} for relation {rel_name!r}; allowed: {allowed}")
    for f in (*rel.metric_fields, *rel.required):
        if f not in table:
            raise err(f"relation {rel_name!r} needs {f!r}", f)
    if rel.one_of and sum(f in table for f in rel.one_of) != 1:
        raise err(f"relation {rel_name!r} needs exactly one of {', '.join(rel.one_of)}")
    if rel.at_least_one_of and not any(f in table for f in rel.at_least_one_of):
        raise err(f"relation {rel_name!r} needs at least one of {', '.join(rel.at_least_one_of)}")

    reason = table.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise err("missing tolerance reason: add reason = \"<one line, from the paper>\"", "reason")
    if "\n" in reason.strip():
        raise err("reason must be one line", "reason")
    name = table.get("name", "")
    if not isinstance(name, str):
        raise err(f"must be a string, got {type(name).__name__}", "name")

    fields = {k: v for k, v in table.items() if k not in COMMON_KEYS}
    for k, v in fields.items():
        _validate_field(k, v, err)
    if _is_number(fields.get("low")) and _is_number(fields.get("high")) \
            and fields["low"] > fields["high"]:
        raise err(f"low {fields['low']} is greater than high {fields['high']}")

    over = table.get("over_seeds", "all")
    if rel.pooled and "over_seeds" in table:
        raise err(f"relation {rel_name!r} pools the seeds itself; remove over_seeds", "over_seeds")
    if isinstance(over, dict):
        frac = over.get("min_fraction")
        if set(over) != {"min_fraction"} or not _is_number(frac) or not 0 < frac <= 1:
            raise err(f"must be \"all\", \"mean\" or {{ min_fraction = f }} with 0 < f <= 1, "
                      f"got {over!r}", "over_seeds")
        over = float(frac)
    elif over not in ("all", "mean"):
        raise err(f"must be \"all\", \"mean\" or {{ min_fraction = f }}, got {over!r}",
                  "over_seeds")

    exp = Expectation(relation=rel_name, fields=fields, reason=reason.strip(),
                      name=name or f"{' '.join(_metric_label(rel, fields))} {rel_name}",
                      over_seeds=over)
    if declared_metrics is not None:
        for m in exp.metric_names:
            if m not in declared_metrics:
                raise err(f"unknown metric {m!r}; the experiment declares: "
                          f"{', '.join(sorted(declared_metrics))}")
    return exp


def _metric_label(rel: Relation, fields: Mapping[str, Any]) -> list[str]:
    if rel.metric_fields == ("metrics",):
        return [",".join(fields["metrics"])]
    if rel.name == "linear_fit":
        return [f"{fields['y']}~{fields['x']}"]
    if rel.name == "proportion_greater":
        return [f"{fields['a']}/{fields['b']}"]
    return [fields[rel.metric_fields[0]]]


def _validate_field(k: str, v: Any, err: Callable[..., ClaimSpecError]) -> None:
    if k in NUMBER_FIELDS or k in COUNT_FIELDS:
        if isinstance(v, str) and PLACEHOLDER.match(v):
            return
        if k in COUNT_FIELDS and isinstance(v, str) and v:
            return  # a metric name
        if not _is_number(v):
            raise err(f"must be a number or \"{{param}}\", got {v!r}", k)
        problem = _number_problem(k, float(v))
        if problem:
            raise err(problem, k)
    elif k in CHOICE_FIELDS:
        if v not in CHOICE_FIELDS[k]:
            raise err(f"must be one of {', '.join(CHOICE_FIELDS[k])}, got {v!r}", k)
    elif k in METRIC_FIELDS:
        if not isinstance(v, str) or not v:
            raise err(f"must be a metric name (string), got {v!r}", k)
    elif k == "metrics":
        if not (isinstance(v, list) and len(v) >= 2 and all(isinstance(m, str) for m in v)):
            raise err(f"must be a list of at least 2 metric names, got {v!r}", k)


# ------------------------------------------------------------------------ evaluation
def _resolve(exp: Expectation, params: Mapping[str, Any]) -> dict[str, Any]:
    """Fields with ``"{param}"`` placeholders replaced by the grid point's values."""
    out: dict[str, Any] = {}
    for k, v in exp.fields.items():
        m = PLACEHOLDER.match(v) if isinstance(v, str) else None
        if m:
            if m.group(1) not in params:
                raise EvaluationError(f"{exp.name}: placeholder {v!r} in {k!r} is not a parameter "
                                      f"(known: {', '.join(sorted(params))})")
            v = params[m.group(1)]
            if not _is_number(v):
                raise EvaluationError(f"{exp.name}: {k} = {exp.fields[k]!r} resolved to {v!r}, "
                                      "not a number")
        if k in NUMBER_FIELDS:
            problem = _number_problem(k, float(v))
            if problem:
                raise EvaluationError(f"{exp.name}: {k} = {v!r}: {problem}")
        out[k] = v
    return out


def _seed_mean(name: str, values: Sequence[Any]) -> Any:
    """Element-wise mean over seeds (a float, or a nested list for array metrics)."""
    try:
        arr = np.asarray([np.asarray(v, dtype=np.float64) for v in values])
    except ValueError:
        raise EvaluationError(f"metric {name!r}: arrays differ in shape across seeds; "
                              "over_seeds = \"mean\" needs equal shapes") from None
    mean = arr.mean(axis=0)
    return mean.tolist() if mean.ndim else float(mean)


def evaluate(exp: Expectation, seeds: Sequence[int], metrics: Sequence[Mapping[str, Any]],
             params: Mapping[str, Any]) -> Verdict:
    """Evaluate ``exp`` on one grid point: ``metrics[i]`` is what seed ``seeds[i]`` returned."""
    if len(seeds) != len(metrics) or not seeds:
        raise EvaluationError(f"{exp.name}: need one metrics dict per seed, got {len(metrics)} "
                              f"for seeds {list(seeds)}")
    rel, f = RELATIONS[exp.relation], _resolve(exp, params)
    for name in exp.metric_names:
        for s, m in zip(seeds, metrics):
            if name not in m:
                raise EvaluationError(f"{exp.name}: the experiment returned no metric {name!r} for "
                                      f"seed {s}; it returned: {', '.join(sorted(m))}")
    if rel.pooled:
        c = rel.check(metrics, f)
        return _verdict(exp, c.measured, c.expected, c.passed, c.why,
                        {"pooled": True, "seeds": list(seeds), **c.numbers})
    if exp.over_seeds == "mean":
        mean = {n: _seed_mean(n, [m[n] for m in metrics]) for n in exp.metric_names}
        c = rel.check(mean, f)
        suffix = f" (mean of {len(seeds)} seeds)" if len(seeds) > 1 else ""
        return _verdict(exp, c.measured + suffix, c.expected, c.passed, c.why,
                        {"mean_over_seeds": True, "seeds": list(seeds), **c.numbers})

    checks = [rel.check(m, f) for m in metrics]
    per_seed = [{"seed": s, "passed": c.passed, "measured": c.measured, "miss": c.miss,
                 **c.numbers} for s, c in zip(seeds, checks)]
    n_pass, n = sum(c.passed for c in checks), len(checks)
    failing = "; ".join(f"seed {s}: {c.why}" for s, c in zip(seeds, checks) if not c.passed)
    if n == 1:
        measured = checks[0].measured
    elif len(joined := ", ".join(c.measured for c in checks)) <= 60:
        measured = joined
    else:
        worst = max(((c.miss or 0.0, s, c) for s, c in zip(seeds, checks) if not c.passed),
                    default=None, key=lambda t: t[0])
        shown = (f"worst seed {worst[1]}: {worst[2].measured}" if worst
                 else f"seed {seeds[0]}: {checks[0].measured}")
        measured = f"{n_pass}/{n} seeds pass; {shown}"
    if exp.over_seeds == "all":
        passed = n_pass == n
        expected = checks[0].expected + (f" (all {n} seeds)" if n > 1 else "")
        why = failing
    else:
        frac = float(exp.over_seeds)
        need = math.ceil(frac * n - 1e-12)
        passed = n_pass >= need
        if n > 1 and not measured.startswith(f"{n_pass}/{n}"):
            measured = f"{n_pass}/{n} seeds pass: {measured}"
        expected = f"{checks[0].expected} for >= {fmt(frac)} of seeds ({need}/{n})"
        why = "" if passed else (f"{n_pass}/{n} seeds pass, needs {need} (short by "
                                 f"{need - n_pass}); {failing}")
    return _verdict(exp, measured, expected, passed, why,
                    {"n_pass": n_pass, "n_seeds": n, "per_seed": per_seed})


def _verdict(exp: Expectation, measured: str, expected: str, passed: bool, why: str,
             details: dict[str, Any]) -> Verdict:
    message = f"{exp.name}: measured {measured}; expected {expected}"
    message += " -> pass" if passed else f" -> FAIL: {why}"
    return Verdict(name=exp.name, relation=exp.relation, metrics=tuple(exp.metric_names),
                   measured=measured, expected=expected, passed=passed, message=message,
                   reason=exp.reason, over_seeds=exp.over_seeds_label, details=details)
