"""Terminal tables (rich) of claim results, built from report item dicts.

The same tables serve the pytest summary, pytest failure messages and the CLI, so
a run and ``hessbench claims report DIR`` print the same thing.
"""
from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from rich import box
from rich.console import Console, Group, RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from hessbench.claims.status import Status

__all__ = ["compact_table", "detail_table", "known_failure_notes", "summary_table",
           "expectation_table", "to_text", "needs_detail"]


def _last_line(text: str | None) -> str:
    lines = [ln for ln in (text or "").strip().splitlines() if ln.strip()]
    return lines[-1].strip() if lines else ""


def _mark(item: dict[str, Any], verdict: dict[str, Any]) -> str:
    """How a verdict's line starts: ``[FAIL]`` for a failing expectation; in a control,
    ``[FAIL, predicted]`` / ``[HELD, predicted fail]`` for the expectations it lists."""
    failed = verdict["verdict"] != Status.PASS
    if verdict["name"] in item["expect_fail"]:
        return "[FAIL, predicted] " if failed else "[HELD, predicted fail] "
    return "[FAIL] " if failed else ""


def needs_detail(item: dict[str, Any]) -> bool:
    """Items whose full table a compact summary adds: failures, errors, unexpected passes."""
    return Status(item["status"]) in (Status.FAIL, Status.ERROR,
                                      Status.KNOWN_FAILURE_PASSED)


def detail_table(items: Sequence[dict[str, Any]], verbose: bool) -> Table | None:
    """The full :func:`summary_table` that follows a compact summary: of every item
    (``verbose``), else of those that :func:`needs_detail`; ``None`` when there are none."""
    detail = list(items) if verbose else [it for it in items if needs_detail(it)]
    if not detail:
        return None
    return summary_table(detail, title="measured against expected"
                         + ("" if verbose else " (items that failed)"))


def _tightest(item: dict[str, Any]) -> str:
    """The one line a compact row shows: the error, the first expectation that decided
    a failure, what a control showed, or that every expectation holds."""
    status, verdicts = Status(item["status"]), item["verdicts"]
    if status == Status.ERROR:
        return f"error: {_last_line(item.get('error'))}"
    if item["kind"] == "control":
        listed = [v for v in verdicts if v["name"] in item["expect_fail"]]
        if item["held"]:
            return "HELD (predicted to fail): " + _first(
                [v for v in listed if v["name"] in item["held"]])
        return "failed as predicted: " + _first(listed)
    failing = [v for v in verdicts if v["verdict"] != Status.PASS]
    if not failing:
        return f"all {len(verdicts)} expectation(s) hold"
    return _first(failing)


def _first(verdicts: Sequence[dict[str, Any]]) -> str:
    """``<name>: <measured>`` of the first verdict, ``(+N more)`` for the others."""
    more = f" (+{len(verdicts) - 1} more)" if len(verdicts) > 1 else ""
    return f"{verdicts[0]['name']}: {verdicts[0]['measured']}{more}"


def compact_table(items: Sequence[dict[str, Any]]) -> Group:
    """Two short lines per item, readable at 80 columns: the item's id (never broken or
    cropped; print with ``crop=False``), then, indented, the verdict, the seconds and the
    deciding expectation (:func:`_tightest`), which wraps to the width."""
    lines: list[RenderableType] = []
    for it in items:
        status = Status(it["status"])
        head = Text(it["item"], no_wrap=True, overflow="ignore")
        detail = Text.assemble((status.label, status.style),
                               f" · {it['seconds']:.1f} s · {_tightest(it)}")
        lines += [head, Padding(detail, (0, 0, 0, 2), expand=False)]
    return Group(*lines)


def known_failure_notes(items: Sequence[dict[str, Any]]) -> Group | None:
    """For each item covered by a known-failure note: its id, this run's miss and the note
    (each labelled, :mod:`hessbench.claims.known`); ``None`` when no item is covered."""
    from hessbench.claims.known import MEASURED, NOTE

    lines: list[RenderableType] = []
    for it in (it for it in items if it.get("known_failure")):
        measured = it.get("known_failure_measured") or "every expectation holds"
        lines += [Text(it["item"], no_wrap=True, overflow="ignore"),
                  Padding(Text(f"{MEASURED}: {measured}"), (0, 0, 0, 2), expand=False),
                  Padding(Text(f"{NOTE}: {it['known_failure']}"), (0, 0, 0, 2), expand=False)]
    return Group(Text("known failures: this run beside the note", style="bold"), *lines) \
        if lines else None


def summary_table(items: Sequence[dict[str, Any]], title: str | None = None) -> Table:
    """One row per item: claim, grid point, measured, expected, verdict, seconds, device.

    A control's grid point reads ``control-<name>[-<point>]``. An item with several
    expectations continues on one sub-line per expectation (so measured and expected
    stay side by side); each line is marked as :func:`_mark` says."""
    table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left")
    for col in ("claim", "grid point", "measured", "expected", "verdict", "seconds", "device"):
        table.add_column(col, overflow="fold", justify="right" if col == "seconds" else "left")
    for it in items:
        status = Status(it["status"])
        if status == Status.ERROR:
            lines = [(f"error: {_last_line(it.get('error'))}", "-")]
        else:
            lines = [(_mark(it, v) + f"{v['name']}: {v['measured']}", v["expected"])
                     for v in it["verdicts"]] or [("-", "-")]
        for i, (measured, expected) in enumerate(lines):
            first = i == 0
            table.add_row(Text(it["claim"] if first else ""),
                          Text((it["label"] or "-") if first else ""), Text(measured),
                          Text(expected),
                          Text(status.label if first else "", style=status.style),
                          f"{it['seconds']:.2f}" if first else "",
                          Text(it["device"] if first else ""), end_section=i == len(lines) - 1)
    return table


def expectation_table(item: dict[str, Any]) -> Table:
    """One row per expectation of one item: expectation, measured, expected, verdict;
    for a control also ``predicted`` (``fail`` for the expectations it lists)."""
    control = item["kind"] == "control"
    table = Table(box=box.SIMPLE_HEAD, show_lines=False)
    for col in ("expectation", "measured", "expected", *(("predicted",) if control else ()),
                "verdict"):
        table.add_column(col, overflow="fold")
    for v in item["verdicts"]:
        verdict = Status(v["verdict"])
        predicted = ("fail" if v["name"] in item["expect_fail"] else "-",) if control else ()
        table.add_row(Text(v["name"]), Text(v["measured"]), Text(v["expected"]),
                      *map(Text, predicted), Text(verdict.label, style=verdict.style))
    return table


def to_text(table: RenderableType, width: int = 120) -> str:
    """Render ``table`` (a table or :func:`compact_table`) as plain text (no colour codes)
    ``width`` columns wide."""
    buf = io.StringIO()
    Console(file=buf, width=max(width, 60), color_system=None, force_terminal=False,
            highlight=False, emoji=False).print(table, crop=False)
    return buf.getvalue().rstrip("\n")
