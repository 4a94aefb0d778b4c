"""Run reports: ``report.json`` (versioned schema), ``report.md`` and one PNG per claim.

The report is built from plain data: the run's metadata, one dict per claim
(:meth:`Claim.to_dict <hessbench.claims.spec.Claim.to_dict>`) and one dict per item
(:meth:`ItemResult.to_dict <hessbench.claims.runner.ItemResult.to_dict>`); the run
session (:class:`~hessbench.claims.runner.ClaimSession`) collects them and calls
:func:`write_report`.

Every file is written atomically (temporary file in the same directory, then
``os.replace``), so an interrupted run never leaves a truncated report. A figure
function that raises is recorded in the report (``claims[].figure.error``) and
does not stop the report from being written.

Schema (``schema_version`` 1): ``schema``, ``schema_version``, ``started``,
``finished``, ``interrupted``, ``profile``, ``device``, ``requested_device``,
``environment`` (python, platform, torch, numpy, scipy, hessbench, git commit and
dirty flag, cpu count, torch threads, device name, argv), ``summary`` (items, pass,
fail, error, xfail, xpass, seconds), ``claims`` (id, title, statement, source,
experiment, file, seeds, gpu, status, known failure, seconds, items, expectations
with reasons, figure {path, error}) and ``items`` (per grid point: params, seeds,
status, seconds, device, error traceback, every seed's metrics and figure data,
every verdict). Statuses are the values of :class:`~hessbench.claims.status.Status`.
Non-finite floats are written as the strings
``"nan"``, ``"inf"``, ``"-inf"`` (JSON has no such numbers).
"""
from __future__ import annotations

import io
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import traceback
from datetime import datetime, timezone
from pathlib import Path
from collections.abc import Mapping, Sequence
from typing import Any

from hessbench.claims.status import Status, count_statuses, summary_line

__all__ = ["SCHEMA", "SCHEMA_VERSION", "write_report", "build_report", "render_figures",
           "render_markdown", "load_report", "atomic_write_bytes", "atomic_write_text",
           "environment"]

SCHEMA = "hessbench.claims.report"
SCHEMA_VERSION = 1


# ------------------------------------------------------------------------ atomic I/O
def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same directory + ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; reports are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """:func:`atomic_write_bytes` of ``text`` encoded as UTF-8."""
    atomic_write_bytes(path, text.encode("utf-8"))


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


# ----------------------------------------------------------------------- environment
def _git(root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                             timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def environment(device: Any, root: Path) -> dict[str, Any]:
    """Versions, platform, git commit and the device the run used."""
    import numpy
    import scipy
    import torch

    try:
        from importlib.metadata import version
        hb_version = version("hessbench")
    except Exception:  # not installed (running from a checkout)
        hb_version = None
    status = _git(root, "status", "--porcelain", "--untracked-files=no")
    is_cuda = getattr(device, "type", str(device)) == "cuda"
    return {
        "python": platform.python_version(), "implementation": platform.python_implementation(),
        "platform": platform.platform(), "machine": platform.machine(),
        "torch": torch.__version__, "numpy": numpy.__version__, "scipy": scipy.__version__,
        "hessbench": hb_version, "git_commit": _git(root, "rev-parse", "HEAD"),
        "git_dirty": None if status is None else bool(status),
        "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "cuda_available": torch.cuda.is_available(),
        "device_name": torch.cuda.get_device_name(device) if is_cuda
        else (platform.processor() or platform.machine()),
        "argv": sys.argv,
    }


# ---------------------------------------------------------------------------- figures
def render_figures(claims: Sequence[Mapping[str, Any]], items: Sequence[Mapping[str, Any]],
                   out_dir: Path) -> dict[str, dict[str, Any]]:
    """One PNG per claim from its experiment's figure function, given every record of the
    claim's items; by claim id, ``{"path", "error"}`` (plus ``"note"`` when there is no
    figure to draw). A figure function that raises is recorded, not raised."""
    import matplotlib

    matplotlib.use("Agg")  # files only; never opens a window

    from hessbench.experiments.registry import get_experiment

    out: dict[str, dict[str, Any]] = {}
    for claim in claims:
        claim_id = claim["id"]
        records = [{"point": it["point"], "params": it["params"], "seed": rec["seed"],
                    "metrics": rec["metrics"], "figure_data": rec["figure_data"]}
                   for it in items if it["claim"] == claim_id for rec in it["records"]]
        figure_fn = get_experiment(claim["experiment"]).figure
        if figure_fn is None:
            out[claim_id] = {"path": None, "error": None,
                             "note": f"experiment {claim['experiment']!r} registers no figure"}
            continue
        if not records:
            out[claim_id] = {"path": None, "error": None, "note": "no measurements to plot"}
            continue
        try:
            fig = figure_fn(records)
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
            if "matplotlib.pyplot" in sys.modules:  # release figures made with pyplot
                sys.modules["matplotlib.pyplot"].close(fig)
            atomic_write_bytes(out_dir / f"{claim_id}.png", buf.getvalue())
            out[claim_id] = {"path": f"{claim_id}.png", "error": None}
        except Exception as exc:  # a broken figure must not lose the report
            out[claim_id] = {"path": None, "error": "".join(traceback.format_exception(exc))}
    return out


# ----------------------------------------------------------------------------- report
#: A claim's status: the first of these among its items' statuses, else pass.
_CLAIM_STATUS_ORDER = (Status.ERROR, Status.FAIL, Status.XPASS, Status.XFAIL)


def _claim_entry(claim: Mapping[str, Any], items: Sequence[Mapping[str, Any]],
                 figure: dict[str, Any]) -> dict[str, Any]:
    mine = [it for it in items if it["claim"] == claim["id"]]
    statuses = {it["status"] for it in mine}
    status = next((s for s in _CLAIM_STATUS_ORDER if s in statuses), Status.PASS)
    head = ("id", "title", "statement", "source", "source_text", "experiment", "file",
            "seeds", "gpu")
    return {**{k: claim[k] for k in head}, "status": status.value,
            "known_failure": claim["known_failure"],
            "seconds": sum(it["seconds"] for it in mine), "items": [it["item"] for it in mine],
            "expectations": claim["expectations"], "figure": figure}


def build_report(run: Mapping[str, Any], claims: Sequence[Mapping[str, Any]],
                 items: Sequence[Mapping[str, Any]], figures: Mapping[str, dict[str, Any]],
                 interrupted: bool = False) -> dict[str, Any]:
    """The report.json document.

    ``run``: ``started`` (ISO time), ``profile``, ``device``, ``requested_device`` and
    ``environment`` (see :func:`environment`); ``claims``: one dict per claim, in report
    order; ``items``: one dict per item; ``figures``: :func:`render_figures`' result.
    """
    summary = {"items": len(items), **count_statuses(it["status"] for it in items),
               "seconds": sum(it["seconds"] for it in items)}
    return _json_safe({
        "schema": SCHEMA, "schema_version": SCHEMA_VERSION,
        "started": run["started"],
        "finished": datetime.now(timezone.utc).isoformat(), "interrupted": interrupted,
        "profile": run["profile"], "device": run["device"],
        "requested_device": run["requested_device"], "environment": run["environment"],
        "summary": summary,
        "claims": [_claim_entry(c, items, figures.get(c["id"], {"path": None, "error": None}))
                   for c in claims],
        "items": list(items),
    })


def write_report(out_dir: Path, run: Mapping[str, Any], claims: Sequence[Mapping[str, Any]],
                 items: Sequence[Mapping[str, Any]], interrupted: bool = False) -> dict[str, Any]:
    """Write the figures first (their errors go into the report), then report.json and
    report.md into ``out_dir``; returns the report document (see :func:`build_report`)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = render_figures(claims, items, out_dir)
    report = build_report(run, claims, items, figures, interrupted)
    atomic_write_text(out_dir / "report.json", json.dumps(report, indent=1) + "\n")
    atomic_write_text(out_dir / "report.md", render_markdown(report))
    return report


def load_report(path: Path | str) -> dict[str, Any]:
    """Read a report.json (or the directory holding one) and check its schema."""
    path = Path(path)
    if path.is_dir():
        path = path / "report.json"
    with path.open(encoding="utf-8") as fh:
        report = json.load(fh)
    if not isinstance(report, dict) or report.get("schema") != SCHEMA:
        raise ValueError(f"{path}: not a hessbench claims report (schema {SCHEMA!r} expected)")
    if report.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"{path}: schema_version {report.get('schema_version')!r} is not "
                         f"supported (this hessbench reads version {SCHEMA_VERSION})")
    return report


# --------------------------------------------------------------------------- markdown
def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", "<br>")


def render_markdown(report: dict[str, Any]) -> str:
    """report.md from a report.json document."""
    env, s = report["environment"], report["summary"]
    lines = [
        "# hessbench claims report", "",
        f"- profile: `{report['profile']}`, device: `{report['device']}` ({env['device_name']})",
        f"- started {report['started']}, finished {report['finished']}"
        + (" (**interrupted**)" if report["interrupted"] else ""),
        f"- python {env['python']}, torch {env['torch']}, numpy {env['numpy']}, "
        f"scipy {env['scipy']}, hessbench {env['hessbench']}, {env['platform']}",
        f"- git commit: `{env['git_commit']}`" + (" (dirty)" if env["git_dirty"] else ""),
        f"- **{summary_line(s, s['items'], noun='items')}** in {s['seconds']:.1f} s", "",
        "| claim | grid point | verdict | seconds | device |",
        "| --- | --- | --- | ---: | --- |",
    ]
    lines += [f"| {_cell(it['claim'])} | {_cell(it['point'] or '-')} | {it['status'].upper()} "
              f"| {it['seconds']:.2f} | {it['device']} |" for it in report["items"]]
    for c in report["claims"]:
        items = [it for it in report["items"] if it["claim"] == c["id"]]
        lines += ["", f"## {c['id']}: {c['title']} ({c['status'].upper()})", "",
                  f"> {c['statement']}", "", f"Source: {c['source_text']}.  ",
                  f"Experiment `{c['experiment']}`, profile `{report['profile']}`, "
                  f"seeds {c['seeds']}, {c['seconds']:.1f} s on `{report['device']}`.", ""]
        if c.get("known_failure"):
            lines += [f"**Known failure at this profile** (declared in the claim file): "
                      f"{c['known_failure']}", ""]
        fig = c["figure"]
        if fig.get("path"):
            lines += [f"![{c['id']}]({fig['path']})", ""]
        elif fig.get("error"):
            lines += ["Figure failed:", "", "```", fig["error"].rstrip(), "```", ""]
        elif fig.get("note"):
            lines += [f"No figure: {fig['note']}.", ""]
        lines += ["| grid point | expectation | measured | expected | verdict |",
                  "| --- | --- | --- | --- | --- |"]
        for it in items:
            if it["status"] == Status.ERROR:
                lines.append(f"| {_cell(it['point'] or '-')} | (experiment) | error | - | ERROR |")
            for v in it["verdicts"]:
                lines.append(f"| {_cell(it['point'] or '-')} | {_cell(v['name'])} | "
                             f"{_cell(v['measured'])} | {_cell(v['expected'])} | "
                             f"{v['verdict'].upper()} |")
        lines += ["", "Tolerance reasons:", ""]
        lines += [f"- {e['name']}: {e['reason']}" for e in c["expectations"]]
        failures = [(it, v) for it in items for v in it["verdicts"] if v["verdict"] == Status.FAIL]
        if failures:
            lines += ["", "Failures:", ""]
            lines += [f"- `{it['point'] or '-'}`: {v['message']}" for it, v in failures]
        for it in items:
            if it["error"]:
                lines += ["", f"Error in `{it['item']}`:", "", "```", it["error"].rstrip(), "```"]
    return "\n".join(lines) + "\n"
