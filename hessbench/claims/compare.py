"""What changed between two runs: two ``report.json`` documents in, plain data out.

:func:`compare_reports` matches items by id and reports the items only one run has, the
items whose status changed (with the expectations whose verdict changed) and the
metrics that moved: a number or array of numbers of a seed both runs measured, changed
by more than ``rtol`` relative to the larger magnitude (bools and strings: any change).
``hessbench claims compare`` prints it (:func:`render`).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from hessbench.claims.status import Status

__all__ = ["compare_reports", "render"]


def _flat(value: Any) -> list[Any]:
    """A metric's elements (nested lists flattened); a scalar is one element."""
    if isinstance(value, list):
        return [x for v in value for x in _flat(v)]
    return [value]


def _number(x: Any) -> float | None:
    """``x`` as a float (report.json writes non-finite floats as strings), else None."""
    if isinstance(x, bool):
        return None
    if isinstance(x, (int, float)):
        return float(x)
    if x in ("nan", "inf", "-inf"):
        return float(x)
    return None


def _moved(old: Any, new: Any, rtol: float) -> bool:
    """Whether a metric changed beyond ``rtol`` (any change of shape, bool or string)."""
    a, b = _flat(old), _flat(new)
    if len(a) != len(b):
        return True
    for x, y in zip(a, b):
        fx, fy = _number(x), _number(y)
        if fx is None or fy is None:
            if x != y:
                return True
        elif not (fx == fy or (math.isnan(fx) and math.isnan(fy))
                  or abs(fx - fy) <= rtol * max(abs(fx), abs(fy))):
            return True
    return False


def _show(value: Any) -> str:
    """A metric as people read it: ``0.9957``, or ``[30 values, 0.05 .. 2.1]``."""
    flat = _flat(value)
    if not isinstance(value, list):
        return f"{value:.4g}" if _number(value) is not None else str(value)
    numbers = [n for n in map(_number, flat) if n is not None]
    if len(flat) <= 4 or not numbers:
        return "[" + ", ".join(_show(x) for x in flat) + "]"
    return f"[{len(flat)} values, {min(numbers):.4g} .. {max(numbers):.4g}]"


def _metric_changes(old: Mapping[str, Any], new: Mapping[str, Any], rtol: float
                    ) -> list[dict[str, Any]]:
    """``{"metric", "seed", "old", "new"}`` for every metric of every seed both items
    measured that moved."""
    old_seeds = {r["seed"]: r["metrics"] for r in old["records"]}
    out = []
    for rec in new["records"]:
        before = old_seeds.get(rec["seed"])
        if before is None:
            continue
        for name in sorted(set(before) & set(rec["metrics"])):
            if _moved(before[name], rec["metrics"][name], rtol):
                out.append({"metric": name, "seed": rec["seed"],
                            "old": _show(before[name]), "new": _show(rec["metrics"][name])})
    return out


def _verdict_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``{"expectation", "old", "new", "measured"}`` where an expectation's verdict changed,
    or it exists in one run only (verdict None there)."""
    before = {v["name"]: v for v in old["verdicts"]}
    after = {v["name"]: v for v in new["verdicts"]}
    out = []
    for name in [*before, *(n for n in after if n not in before)]:
        a, b = before.get(name), after.get(name)
        if (a and a["verdict"]) != (b and b["verdict"]):
            out.append({"expectation": name, "old": a and a["verdict"],
                        "new": b and b["verdict"],
                        "measured": f"{a['measured'] if a else '-'} -> "
                                    f"{b['measured'] if b else '-'}"})
    return out


def compare_reports(old: Mapping[str, Any], new: Mapping[str, Any], rtol: float = 1e-6
                    ) -> dict[str, Any]:
    """The changes from run ``old`` to run ``new`` (loaded report.json documents):
    ``added`` / ``removed`` item ids, ``status`` (per item whose status changed: item, old,
    new, verdicts that changed), ``metrics`` (per item with moved metrics: item and
    changes), ``unchanged`` (the number of common items with neither), and the runs'
    ``profiles``."""
    if rtol < 0 or not math.isfinite(rtol):
        raise ValueError(f"--rtol must be a finite number >= 0, got {rtol}")
    a = {it["item"]: it for it in old["items"]}
    b = {it["item"]: it for it in new["items"]}
    common = [i for i in b if i in a]
    status = [{"item": i, "old": a[i]["status"], "new": b[i]["status"],
               "verdicts": _verdict_changes(a[i], b[i])}
              for i in common if a[i]["status"] != b[i]["status"]]
    metrics = [{"item": i, "changes": ch} for i in common
               if (ch := _metric_changes(a[i], b[i], rtol))]
    touched = {c["item"] for c in status} | {m["item"] for m in metrics}
    return {"added": [i for i in b if i not in a], "removed": [i for i in a if i not in b],
            "status": status, "metrics": metrics, "rtol": rtol,
            "unchanged": sum(i not in touched for i in common),
            "profiles": (old["profile"], new["profile"])}


def render(diff: Mapping[str, Any], names: Sequence[str]) -> list[str]:
    """The changes as lines for the terminal; ``names`` labels the two runs."""
    lines = [f"{names[0]} -> {names[1]}"]
    if diff["profiles"][0] != diff["profiles"][1]:
        lines.append(f"note: the runs have different profiles ({diff['profiles'][0]} -> "
                     f"{diff['profiles'][1]})")

    def label(status: str | None) -> str:
        return "-" if status is None else Status(status).label

    if diff["status"]:
        lines.append(f"status changed ({len(diff['status'])}):")
        for ch in diff["status"]:
            lines.append(f"  {ch['item']}: {label(ch['old'])} -> {label(ch['new'])}")
            lines += [f"    {v['expectation']}: {label(v['old'])} -> {label(v['new'])} "
                      f"(measured {v['measured']})" for v in ch["verdicts"]]
    for key, title in (("added", "new items"), ("removed", "removed items")):
        if diff[key]:
            lines.append(f"{title} ({len(diff[key])}): {', '.join(diff[key])}")
    if diff["metrics"]:
        lines.append(f"metrics that moved (beyond rtol {diff['rtol']:g}) in "
                     f"{len(diff['metrics'])} item(s):")
        for m in diff["metrics"]:
            lines.append(f"  {m['item']}")
            lines += [f"    {c['metric']} (seed {c['seed']}): {c['old']} -> {c['new']}"
                      for c in m["changes"]]
    changed = diff["status"] or diff["added"] or diff["removed"] or diff["metrics"]
    lines.append(f"{diff['unchanged']} item(s) unchanged" if changed
                 else f"no change: {diff['unchanged']} item(s), same statuses and metrics")
    return lines
