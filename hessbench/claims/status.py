"""The status of a claim item, its label and colour, and the counts of a run.

:class:`Status` is a ``str`` enum: a member equals, hashes and serialises as its value,
so ``report.json`` holds the plain strings ``"pass"``, ``"fail"``, ... and a status read
back from a report compares equal to the member. Stdlib only (the pytest plugin imports
this module in every pytest run).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import Enum

__all__ = ["Status", "COUNTED", "LEGACY_VALUES", "count_statuses", "summary_line"]


class Status(str, Enum):
    """What became of one grid point of a claim or control (or one expectation:
    ``PASS``/``FAIL``; a control passes when its listed expectations fail).

    ``KNOWN_FAILURE``: failed under a profile that declares a known failure (pytest's
    XFAIL); ``KNOWN_FAILURE_PASSED``: passed under such a profile (a failure of the run:
    the note is out of date; pytest's strict XPASS); ``PENDING``: not run yet. "known
    failure" is the one word of the terminal, report.md and report.json.
    """

    PASS = "pass"
    FAIL = "fail"
    ERROR = "error"
    KNOWN_FAILURE = "known_failure"
    KNOWN_FAILURE_PASSED = "known_failure_passed"
    PENDING = "pending"

    def __str__(self) -> str:
        return self.value

    __format__ = str.__format__

    @property
    def label(self) -> str:
        """The verdict shown in tables, e.g. ``KNOWN FAILURE``."""
        return _LABEL[self]

    @property
    def style(self) -> str:
        """The rich style of :attr:`label`."""
        return _STYLE[self]


_LABEL = {Status.PASS: "PASS", Status.FAIL: "FAIL", Status.ERROR: "ERROR",
          Status.PENDING: "NOT RUN", Status.KNOWN_FAILURE: "KNOWN FAILURE",
          Status.KNOWN_FAILURE_PASSED: "PASS (marked known failure)"}
_STYLE = {Status.PASS: "green", Status.FAIL: "bold red", Status.ERROR: "bold magenta",
          Status.PENDING: "yellow", Status.KNOWN_FAILURE: "red",
          Status.KNOWN_FAILURE_PASSED: "bold red"}

#: The statuses a finished run counts, in the order of ``report.json``'s ``summary``.
COUNTED = (Status.PASS, Status.FAIL, Status.ERROR, Status.KNOWN_FAILURE,
           Status.KNOWN_FAILURE_PASSED)

#: The values of report.json schema 2 (before issue 19) that were renamed, old -> new.
LEGACY_VALUES = {"xfail": Status.KNOWN_FAILURE.value,
                 "xpass": Status.KNOWN_FAILURE_PASSED.value}


def count_statuses(statuses: Iterable[str]) -> dict[str, int]:
    """How many items have each status, by value: ``{"pass": a, "fail": b, "error": c,
    "known_failure": d, "known_failure_passed": e}`` (a ``"pending"`` key only for an item
    that was not run)."""
    counts = {s.value: 0 for s in COUNTED}
    for status in statuses:
        key = Status(status).value
        counts[key] = counts.get(key, 0) + 1
    return counts


def summary_line(counts: Mapping[str, int], items: int, controls: int,
                 noun: str = "claim item") -> str:
    """``"<items> <noun>s (<controls> controls): a pass, b fail, c error, d known
    failures"`` (singular for one; ``, e passed against a known-failure note`` when there
    are such) from the counts of :func:`count_statuses` (or ``report.json``'s ``summary``);
    the counts are of all items, controls among them."""
    known, passed = (counts.get(s.value, 0) for s in COUNTED[3:])
    return (f"{_plural(items, noun)} ({_plural(controls, 'control')}): "
            f"{counts['pass']} pass, {counts['fail']} fail, {counts['error']} error, "
            f"{_plural(known, 'known failure')}"
            + (f", {passed} passed against a known-failure note" if passed else ""))


def _plural(n: int, noun: str) -> str:
    """``1 claim item``, ``2 claim items``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"
