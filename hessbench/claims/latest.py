"""The latest run in a results folder (``results/claims``): a ``latest`` symlink to it,
or a ``LATEST`` text file holding its name where symlinks cannot be made."""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["LINK", "TEXT", "mark_latest", "find_latest"]

LINK, TEXT = "latest", "LATEST"


def mark_latest(results: Path, run_dir: Path) -> Path | None:
    """Point ``results/latest`` at ``run_dir`` (relative, replaced atomically) when
    ``run_dir`` is directly in ``results``; where a symlink fails, write ``results/LATEST``
    instead. Returns the link or text file, None when ``run_dir`` is elsewhere."""
    results, run_dir = Path(results).resolve(), Path(run_dir).resolve()
    if run_dir.parent != results:
        return None
    tmp = results / f".{LINK}.{os.getpid()}"
    try:
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(run_dir.name, target_is_directory=True)
        os.replace(tmp, results / LINK)
    except OSError:
        tmp.unlink(missing_ok=True)
        (results / TEXT).write_text(run_dir.name + "\n", encoding="utf-8")
        return results / TEXT
    (results / TEXT).unlink(missing_ok=True)
    return results / LINK


def find_latest(results: Path) -> Path:
    """The run ``results/latest`` (or ``LATEST``) names; without either, the newest run
    folder by name (timestamps sort). ``FileNotFoundError`` saying what is missing."""
    results = Path(results)
    link, text = results / LINK, results / TEXT
    if link.is_dir():
        return link.resolve()
    if text.is_file():
        named = results / text.read_text(encoding="utf-8").strip()
        if named.is_dir():
            return named
    runs = sorted(p for p in results.glob("*") if (p / "report.json").is_file()
                  and p.name != LINK)
    if not runs:
        raise FileNotFoundError(f"no run in {results} (no folder with a report.json); give "
                                "the run's directory")
    return runs[-1]

