"""A known failure's measured miss, shown beside its note.

A ``known_failure`` note is written once, after a run, by a person; the figures it quotes
are that run's. So that a note can never pass for the truth of a later run, every place
that shows a note (the terminal, report.md, report.json, pytest's XFAIL reason) shows
next to it what *this* run measured for the expectations that failed
(:func:`measured_miss`). Stdlib only (the pytest plugin imports it).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["MEASURED", "NOTE", "measured_miss", "beside_note"]

#: The labels of the two: this run's figures, and the note's.
MEASURED, NOTE = "measured in this run", "note (as recorded in the claim file)"


def measured_miss(verdicts: Sequence[Mapping[str, Any]]) -> str | None:
    """``"<expectation>: measured M; expected E"`` for each failing verdict (report.json
    verdict dicts), joined by ``" | "``; None when none failed (no miss to show)."""
    failing = [v for v in verdicts if v["verdict"] != "pass"]
    if not failing:
        return None
    return " | ".join(f"{v['name']}: measured {v['measured']}; expected {v['expected']}"
                      for v in failing)


def beside_note(note: str, measured: str | None) -> str:
    """The note and this run's miss in one line, each labelled, the live figures first."""
    return f"{MEASURED}: {measured or 'every expectation holds'} || {NOTE}: {note}"
