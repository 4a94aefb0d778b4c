"""The status of a claim item, its label and colour, and the counts of a run.

:class:`Status` is a ``str`` enum: a member equals, hashes and serialises as its value,
so ``report.json`` holds the plain strings ``"pass"``, ``"fail"``, ... and a status read
back from a report compares equal to the member. Stdlib only (the pytest plugin imports
this module in every pytest run).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import Enum

__all__ = ["Status", "COUNTED", "count_statuses", "summary_line"]


class Status(str, Enum):
    """What became of one grid point of a claim or control (or one expectation:
    ``PASS``/``FAIL``; a control passes when its listed expectations fail).

    ``XFAIL``: failed under a profile that declares a known failure; ``XPASS``: passed
    under such a profile (a failure of the run: the note is out of date); ``PENDING``:
    not run yet.
    """

    PASS = "pass"
    FAIL = "fail"
    ERROR = "error"
    XFAIL = "xfail"
    XPASS = "xpass"
    PENDING = "pending"

    def __str__(self) -> str:
        return self.value

    __format__ = str.__format__

    @property
    def label(self) -> str:
        """The verdict shown in tables, e.g. ``FAIL (known)`` for ``XFAIL``."""
        return _LABEL[self]

    @property
    def style(self) -> str:
        """The rich style of :attr:`label`."""
        return _STYLE[self]


_LABEL = {Status.PASS: "PASS", Status.FAIL: "FAIL", Status.ERROR: "ERROR",
          Status.PENDING: "NOT RUN", Status.XFAIL: "FAIL (known)",
          Status.XPASS: "PASS (marked known failure)"}
_STYLE = {Status.PASS: "green", Status.FAIL: "bold red", Status.ERROR: "bold magenta",
          Status.PENDING: "yellow", Status.XFAIL: "red", Status.XPASS: "bold red"}

#: The statuses a finished run counts, in the order of ``report.json``'s ``summary``.
COUNTED = (Status.PASS, Status.FAIL, Status.ERROR, Status.XFAIL, Status.XPASS)


def count_statuses(statuses: Iterable[str]) -> dict[str, int]:
    """How many items have each status, by value: ``{"pass": a, "fail": b, "error": c,
    "xfail": d, "xpass": e}`` (a ``"pending"`` key only for an item that was not run)."""
    counts = {s.value: 0 for s in COUNTED}
    for status in statuses:
        key = Status(status).value
        counts[key] = counts.get(key, 0) + 1
    return counts


def summary_line(counts: Mapping[str, int], items: int, controls: int,
                 noun: str = "claim item") -> str:
    """``"<items> <noun>s (<controls> controls): a pass, b fail, c error, d known failure"``
    (singular for one) from the counts of :func:`count_statuses` (or ``report.json``'s
    ``summary``); the counts are of all items, controls among them."""
    return (f"{items} {noun}{'' if items == 1 else 's'} "
            f"({controls} control{'' if controls == 1 else 's'}): "
            f"{counts['pass']} pass, {counts['fail']} fail, "
            f"{counts['error']} error, {counts.get('xfail', 0)} known failure")
