"""Run reports: ``report.json`` (versioned schema), ``report.md`` and one PNG per claim.

The report is built from plain data: the run's metadata, one dict per claim
(:meth:`Claim.to_dict <hessbench.claims.spec.Claim.to_dict>`) and one dict per item
(:meth:`ItemResult.to_dict <hessbench.claims.runner.ItemResult.to_dict>`); the run
session (:class:`~hessbench.claims.runner.ClaimSession`) collects them and calls
:func:`write_report`.

Every file is written atomically (temporary file in the same directory, then
``os.replace``), so an interrupted run never leaves a truncated report. A figure
function that raises is recorded in the report (``claims[].figure.error``) and
does not stop the report from being written. A claim's PNG shows its own records
and, side by side, each control's.

Schema (``schema_version`` 3): ``schema``, ``schema_version``, ``started``,
``finished``, ``interrupted``, ``profile``, ``device``, ``requested_device``,
``seeds_override`` (the seeds every item ran instead of its declared ones, or null),
``environment`` (python, platform, torch, numpy, scipy, hessbench, git commit and
dirty flag, cpu count, torch threads, the BLAS thread variables ``thread_env``
{OMP_NUM_THREADS, MKL_NUM_THREADS: value or null}, device name, argv), ``summary`` (items,
controls, pass, fail, error, known_failure, known_failure_passed, seconds), ``claims``
(id, title,
statement, source, experiment, file, seeds, gpu, status, known failure, seconds,
items, expectations with reasons, controls {name, reason, expect_fail, params, grid,
seeds, status, held, seconds, items}, no_control, figure {path, error}) and ``items``
(per grid point of a claim or control: kind, control, label, params, seeds,
declared_seeds, seeds_override, expect_fail, held, status, known_failure (the note that
covers the item, or null), known_failure_measured (this run's miss beside that note:
:func:`~hessbench.claims.known.measured_miss`), seconds, device, error traceback, every
seed's metrics and figure data, every verdict). A claim's status is
that of its own items, each control's that of the control's items. Statuses are the
values of :class:`~hessbench.claims.status.Status`. Non-finite floats are written
as the strings ``"nan"``, ``"inf"``, ``"-inf"`` (JSON has no such numbers).

:func:`load_report` also reads schema 2 (before the one word "known failure"): its
``xfail`` / ``xpass`` statuses and summary keys become ``known_failure`` /
``known_failure_passed`` and each known-failure item gets its measured miss.
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

from hessbench.claims.known import measured_miss
from hessbench.claims.status import LEGACY_VALUES, Status, count_statuses, summary_line

__all__ = ["SCHEMA", "SCHEMA_VERSION", "write_report", "build_report", "render_figures",
           "render_markdown", "load_report", "atomic_write_bytes", "atomic_write_text",
           "environment", "seeds_override_note", "loses_items"]

SCHEMA = "hessbench.claims.report"
SCHEMA_VERSION = 3


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
#: Environment variables that set the BLAS / OpenMP thread count, recorded in every
#: report: a result near a threshold can depend on it (reductions change order).
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _git(root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                             timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def environment(device: Any, root: Path) -> dict[str, Any]:
    """Versions, platform, git commit, thread counts and the device the run used."""
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
        "thread_env": {name: os.environ.get(name) for name in THREAD_ENV},
        "cuda_available": torch.cuda.is_available(),
        "device_name": torch.cuda.get_device_name(device) if is_cuda
        else (platform.processor() or platform.machine()),
        "argv": sys.argv,
    }


# ---------------------------------------------------------------------------- figures
def render_figures(claims: Sequence[Mapping[str, Any]], items: Sequence[Mapping[str, Any]],
                   out_dir: Path) -> dict[str, dict[str, Any]]:
    """One PNG per claim from its experiment's figure function; by claim id, ``{"path",
    "error"}`` (plus ``"note"`` when there is no figure to draw).

    The function is called once with every record of the claim's own items and once per
    control with that control's records; with controls the panels are placed side by
    side in the one PNG, each titled (``claim``, ``control <name>: ...``). A figure
    function that raises is recorded in ``error`` (naming the panel), not raised; the
    panels that drew are still written."""
    import matplotlib

    matplotlib.use("Agg")  # files only; never opens a window

    from hessbench.experiments.registry import get_experiment

    out: dict[str, dict[str, Any]] = {}
    for claim in claims:
        figure_fn = get_experiment(claim["experiment"]).figure
        panels = [(title, recs) for title, recs in _panels(claim, items) if recs]
        if figure_fn is None:
            out[claim["id"]] = {"path": None, "error": None,
                                "note": f"experiment {claim['experiment']!r} registers no figure"}
        elif not panels:
            out[claim["id"]] = {"path": None, "error": None, "note": "no measurements to plot"}
        else:
            out[claim["id"]] = _draw(figure_fn, panels, out_dir / f"{claim['id']}.png")
    return out


CLAIM_PANEL = "claim"
FIGURE_DPI = 120


def _records(items: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The figure function's records of ``items``: one per grid point and seed, with the
    metrics the item's test reads (``tested_metrics``, see :func:`tested_metrics`)."""
    return [{"point": it["point"], "params": it["params"], "seed": rec["seed"],
             "metrics": rec["metrics"], "figure_data": rec["figure_data"],
             "tested_metrics": tested_metrics(it)}
            for it in items for rec in it["records"]]


def tested_metrics(item: Mapping[str, Any]) -> list[str]:
    """The metrics an item's verdict rests on, sorted: those of every expectation of a
    claim item, of the ``expect_fail`` expectations of a control item (so a figure can
    mark which of several reported quantities the claim asserts)."""
    return sorted({m for v in item["verdicts"]
                   if item["kind"] == "claim" or v["name"] in item["expect_fail"]
                   for m in v["metrics"]})


def _panels(claim: Mapping[str, Any], items: Sequence[Mapping[str, Any]]
            ) -> list[tuple[str, list[dict[str, Any]]]]:
    """``(title, records)``: the claim's own items, then each control's."""
    mine = [it for it in items if it["claim"] == claim["id"]]
    own = [it for it in mine if it["kind"] == "claim"]
    panels = [(_claim_title(_group(own)), _records(own))]
    for ctl in claim["controls"]:
        runs = [it for it in mine if it["control"] == ctl["name"]]
        panels.append((_control_title(ctl["name"], _group(runs)), _records(runs)))
    return panels


def _claim_title(group: Mapping[str, Any]) -> str:
    """``claim``, stamped when its items did not all pass (a known failure, a failure, an
    error), so that a figure never looks like a replication it is not."""
    if group["status"] in (Status.PASS, Status.PENDING):
        return CLAIM_PANEL
    if group["status"] == Status.KNOWN_FAILURE:
        return f"{CLAIM_PANEL}: KNOWN FAILURE (does not replicate as declared; see the claim file)"
    return f"{CLAIM_PANEL}: {Status(group['status']).label}"


def _control_title(name: str, group: Mapping[str, Any]) -> str:
    """``control <name>: <what its run showed>`` (:func:`_group` of its items)."""
    if group["status"] == Status.PASS:
        return f"control {name}: expectations failed as predicted"
    if group["status"] == Status.FAIL:
        return f"control {name}: CONTROL FAILED: {', '.join(group['held'])} held"
    return f"control {name}: {Status(group['status']).label}"


def _draw(figure_fn: Any, panels: list[tuple[str, list[dict[str, Any]]]],
          path: Path) -> dict[str, Any]:
    """Draw every panel, write the PNG (the claim's figure alone, or the panels side by
    side) and return ``{"path", "error"}``."""
    drawn, errors = [], []
    for title, records in panels:
        try:
            drawn.append((title, figure_fn(records)))
        except Exception as exc:  # a broken figure must not lose the report
            errors.append(f"{title}:\n{''.join(traceback.format_exception(exc))}")
    written = None
    try:
        if drawn:
            alone = [t for t, _ in panels] == [CLAIM_PANEL]
            fig = drawn[0][1] if alone else _side_by_side(drawn)
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=FIGURE_DPI, bbox_inches="tight")
            atomic_write_bytes(path, buf.getvalue())
            written = path.name
    except Exception as exc:
        errors.append(f"saving {path.name}:\n{''.join(traceback.format_exception(exc))}")
    finally:
        if "matplotlib.pyplot" in sys.modules:  # release figures made with pyplot
            for _, fig in drawn:
                sys.modules["matplotlib.pyplot"].close(fig)
    return {"path": written, "error": "\n".join(errors) or None}


def _side_by_side(drawn: list[tuple[str, Any]]) -> Any:
    """One figure with each drawn figure rendered to pixels as a titled panel."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    images = []
    for _, fig in drawn:
        fig.set_dpi(FIGURE_DPI)
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        images.append(np.asarray(canvas.buffer_rgba()))
    height, title_height = max(im.shape[0] for im in images) / FIGURE_DPI, 0.35  # inches
    out = Figure(figsize=(sum(im.shape[1] for im in images) / FIGURE_DPI * 1.02,
                          height + title_height), dpi=FIGURE_DPI)
    axes = out.subplots(1, len(images), squeeze=False,
                        width_ratios=[im.shape[1] for im in images])[0]
    out.subplots_adjust(left=0, right=1, bottom=0, top=height / (height + title_height),
                        wspace=0.02)
    for ax, (title, _), image in zip(axes, drawn, images):
        ax.imshow(image)
        ax.set_axis_off()
        ax.set_title(title, fontsize=11, color="black" if title == CLAIM_PANEL or
                     title.endswith("failed as predicted") else "red")
    return out


# ----------------------------------------------------------------------------- report
#: A group's status (a claim's own items, or one control's): the first of these among
#: its items' statuses, else pass; pending when none of its items ran.
_GROUP_STATUS_ORDER = (Status.ERROR, Status.FAIL, Status.KNOWN_FAILURE_PASSED,
                       Status.KNOWN_FAILURE)


def _group(items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Status, held expectations (controls), seconds and item ids of a claim's own items
    or of one control's items."""
    statuses = {it["status"] for it in items}
    status = next((s for s in _GROUP_STATUS_ORDER if s in statuses),
                  Status.PASS if items else Status.PENDING)
    return {"status": status.value,
            "held": list(dict.fromkeys(h for it in items for h in it["held"])),
            "seconds": sum(it["seconds"] for it in items), "items": [it["item"] for it in items]}


def _claim_entry(claim: Mapping[str, Any], items: Sequence[Mapping[str, Any]],
                 figure: dict[str, Any]) -> dict[str, Any]:
    mine = [it for it in items if it["claim"] == claim["id"]]
    own = _group([it for it in mine if it["kind"] == "claim"])
    head = ("id", "title", "statement", "source", "source_text", "experiment", "file",
            "seeds", "gpu")
    return {**{k: claim[k] for k in head}, "status": own["status"],
            "known_failure": claim["known_failure"],
            "known_failure_points": claim.get("known_failure_points"), "seconds": own["seconds"],
            "items": own["items"], "expectations": claim["expectations"],
            "controls": [{**ctl, **_group([it for it in mine if it["control"] == ctl["name"]])}
                         for ctl in claim["controls"]],
            "no_control": claim["no_control"], "figure": figure}


def build_report(run: Mapping[str, Any], claims: Sequence[Mapping[str, Any]],
                 items: Sequence[Mapping[str, Any]], figures: Mapping[str, dict[str, Any]],
                 interrupted: bool = False) -> dict[str, Any]:
    """The report.json document.

    ``run``: ``started`` (ISO time), ``profile``, ``device``, ``requested_device``,
    ``seeds_override`` (the seeds a run used instead of the declared ones, or None) and
    ``environment`` (see :func:`environment`); ``claims``: one dict per claim, in report
    order; ``items``: one dict per item; ``figures``: :func:`render_figures`' result.
    """
    summary = {"items": len(items),
               "controls": sum(it["kind"] == "control" for it in items),
               **count_statuses(it["status"] for it in items),
               "seconds": sum(it["seconds"] for it in items)}
    return _json_safe({
        "schema": SCHEMA, "schema_version": SCHEMA_VERSION,
        "started": run["started"],
        "finished": datetime.now(timezone.utc).isoformat(), "interrupted": interrupted,
        "profile": run["profile"], "device": run["device"],
        "requested_device": run["requested_device"], "seeds_override": run["seeds_override"],
        "environment": run["environment"],
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
    version = report.get("schema_version")
    if version == 2:
        return _upgrade_v2(report)
    if version != SCHEMA_VERSION:
        raise ValueError(f"{path}: schema_version {version!r} is not supported (this "
                         f"hessbench reads versions 2 and {SCHEMA_VERSION})")
    return report


def _upgrade_v2(report: dict[str, Any]) -> dict[str, Any]:
    """A schema 2 report read as schema 3: renamed statuses and summary keys, and each
    known-failure item's measured miss (from its verdicts)."""
    def new(status: str) -> str:
        return LEGACY_VALUES.get(status, status)

    summary = report["summary"]
    report["summary"] = {LEGACY_VALUES.get(k, k): v for k, v in summary.items()}
    for group in [*report["claims"], *(c for cl in report["claims"] for c in cl["controls"])]:
        group["status"] = new(group["status"])
    for it in report["items"]:
        it["status"] = new(it["status"])
        it["known_failure_measured"] = (None if it.get("known_failure") is None
                                        else measured_miss(it["verdicts"]))
    report["schema_version"] = SCHEMA_VERSION
    return report


def loses_items(out_dir: Path | str, item_ids: Sequence[str]) -> bool:
    """Whether a report of ``item_ids`` written into ``out_dir`` would lose results: the
    report there holds an item not among them, or its report.json is unreadable (kept, in
    case it is a report of another version)."""
    path = Path(out_dir) / "report.json"
    if not path.exists():
        return False
    try:
        earlier = {it["item"] for it in load_report(path)["items"]}
    except (OSError, ValueError, KeyError, TypeError):
        return True
    return not earlier <= set(item_ids)


# --------------------------------------------------------------------------- markdown
SEEDS_OVERRIDDEN = "seeds overridden: not the declared run"


def seeds_override_note(seeds: Sequence[int] | None) -> str:
    """``seeds overridden: not the declared run (seeds [3, 4])``; empty for a run of the
    declared seeds (``seeds`` None)."""
    return "" if seeds is None else f"{SEEDS_OVERRIDDEN} (seeds {list(seeds)})"


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", "<br>")


def _point(item: Mapping[str, Any]) -> str:
    return _cell(item["label"] or "-")


def render_markdown(report: dict[str, Any]) -> str:
    """report.md from a report.json document."""
    lines = _md_head(report)
    for c in report["claims"]:
        items = [it for it in report["items"] if it["claim"] == c["id"]]
        lines += _md_claim(c, [it for it in items if it["kind"] == "claim"], report)
        for ctl in c["controls"]:
            lines += _md_control(ctl, [it for it in items if it["control"] == ctl["name"]])
        if c["no_control"]:
            lines += ["", f"No negative control (declared): {c['no_control']}"]
        for it in items:
            if it["error"]:
                lines += ["", f"Error in `{it['item']}`:", "", "```", it["error"].rstrip(), "```"]
    return "\n".join(lines) + "\n"


def _md_head(report: Mapping[str, Any]) -> list[str]:
    """The run's metadata, the summary line and one row per item."""
    env, s = report["environment"], report["summary"]
    lines = [
        "# hessbench claims report", "",
        f"- profile: `{report['profile']}`, device: `{report['device']}` ({env['device_name']})",
        f"- started {report['started']}, finished {report['finished']}"
        + (" (**interrupted**)" if report["interrupted"] else ""),
        f"- python {env['python']}, torch {env['torch']}, numpy {env['numpy']}, "
        f"scipy {env['scipy']}, hessbench {env['hessbench']}, {env['platform']}",
        f"- git commit: `{env['git_commit']}`" + (" (dirty)" if env["git_dirty"] else ""),
        _md_threads(env),
    ]
    if report["seeds_override"] is not None:
        lines.append(f"- **{SEEDS_OVERRIDDEN}**: every item ran seeds "
                     f"{report['seeds_override']} instead of its declared seeds")
    lines += [f"- **{summary_line(s, s['items'], s['controls'], noun='item')}** "
              f"in {s['seconds']:.1f} s", "",
              "| claim | grid point | verdict | seconds | device |",
              "| --- | --- | --- | ---: | --- |"]
    lines += [f"| {_cell(it['claim'])} | {_point(it)} | {Status(it['status']).label} "
              f"| {it['seconds']:.2f} | {it['device']} |" for it in report["items"]]
    return lines


def _md_threads(env: Mapping[str, Any]) -> str:
    """The thread counts a run used (a count near a threshold can depend on them)."""
    thread_env = env.get("thread_env", {})  # absent in reports before issue 20
    values = [f"{name}={thread_env[name]}" if thread_env.get(name) is not None
              else f"{name} unset" for name in THREAD_ENV]
    return (f"- threads: torch {env.get('torch_threads', '?')}, {', '.join(values)} "
            "(results near a threshold can depend on the BLAS thread count)")


def _md_claim(c: Mapping[str, Any], items: Sequence[Mapping[str, Any]],
              report: Mapping[str, Any]) -> list[str]:
    """A claim's section: statement, source, figure, its items' verdicts and reasons."""
    controls = ", ".join(f"{ctl['name']} {Status(ctl['status']).label}" for ctl in c["controls"])
    lines = ["", f"## {c['id']}: {c['title']} ({Status(c['status']).label}"
             + (f"; controls: {controls})" if controls else ")"), "",
             f"> {c['statement']}", "", f"Source: {c['source_text']}.  ",
             f"Experiment `{c['experiment']}`, profile `{report['profile']}`, "
             f"seeds {c['seeds']}, {c['seconds']:.1f} s on `{report['device']}`.", ""]
    if report["seeds_override"] is not None:
        lines += [f"**{SEEDS_OVERRIDDEN}** (ran seeds {report['seeds_override']}).", ""]
    if c.get("known_failure"):
        lines += _md_known_failure(c, items)
    fig = c["figure"]
    if fig.get("path"):
        lines += [f"![{c['id']}]({fig['path']})", ""]
    if fig.get("error"):
        lines += ["Figure failed:", "", "```", fig["error"].rstrip(), "```", ""]
    elif fig.get("note"):
        lines += [f"No figure: {fig['note']}.", ""]
    lines += _md_verdicts(items)
    lines += ["", "Tolerance reasons:", ""]
    lines += [f"- {e['name']}: {e['reason']}" for e in c["expectations"]]
    failures = [(it, v) for it in items for v in it["verdicts"] if v["verdict"] == Status.FAIL]
    if failures:
        lines += ["", "Failures:", ""]
        lines += [f"- `{it['label'] or '-'}`: {v['message']}" for it, v in failures]
    return lines


def _md_known_failure(c: Mapping[str, Any], items: Sequence[Mapping[str, Any]]) -> list[str]:
    """The claim file's note (its figures are those of the run it was written after) and,
    beside it, what this run measured at each point it covers."""
    where = ("this profile" if not c.get("known_failure_points")
             else "points " + ", ".join(c["known_failure_points"]))
    covered = [it for it in items if it.get("known_failure")]
    lines = [f"**Known failure at {where}**. Note, as recorded in the claim file (its "
             f"figures are those of the run it was written after): {_cell(c['known_failure'])}",
             "", "Measured in this run:", ""]
    lines += [f"- `{it['label'] or '-'}` ({Status(it['status']).label}): "
              f"{_cell(it.get('known_failure_measured') or 'every expectation holds')}"
              for it in covered] or ["- (no item of this run is covered by the note)"]
    return lines + [""]


def _md_verdicts(items: Sequence[Mapping[str, Any]], expect_fail: Sequence[str] = ()
                 ) -> list[str]:
    """The measured-vs-expected table of ``items``; with ``expect_fail`` (a control) a
    column marks the expectations predicted to fail."""
    control = bool(expect_fail)
    extra = ("predicted | ", "--- | ") if control else ("", "")
    lines = [f"| grid point | expectation | measured | expected | {extra[0]}verdict |",
             f"| --- | --- | --- | --- | {extra[1]}--- |"]
    for it in items:
        if it["status"] == Status.ERROR:
            lines.append(f"| {_point(it)} | (experiment) | error | - | "
                         f"{'- | ' if control else ''}ERROR |")
        for v in it["verdicts"]:
            predicted = ("fail | " if v["name"] in expect_fail else "- | ") if control else ""
            lines.append(f"| {_point(it)} | {_cell(v['name'])} | {_cell(v['measured'])} | "
                         f"{_cell(v['expected'])} | {predicted}{v['verdict'].upper()} |")
    return lines


def _md_control(ctl: Mapping[str, Any], items: Sequence[Mapping[str, Any]]) -> list[str]:
    """A control's section, below its claim: reason, what it changes, verdicts."""
    changes = [f"params {ctl['params']}"] if ctl["params"] else []
    changes += [f"{key} {ctl[key]}" for key in ("grid", "seeds") if ctl[key] is not None]
    lines = ["", f"### {_control_title(ctl['name'], ctl)} ({Status(ctl['status']).label})", "",
             f"Reason: {ctl['reason']}  ", f"Changes: {'; '.join(changes)}.  ",
             f"Expected to fail: {', '.join(ctl['expect_fail'])}.", ""]
    lines += _md_verdicts(items, ctl["expect_fail"])
    held = [(it, v) for it in items for v in it["verdicts"]
            if v["name"] in it["held"] and v["verdict"] == Status.PASS]
    if held:
        lines += ["", "Held in the control (the claim's test would pass without the effect):",
                  ""]
        lines += [f"- `{it['label']}`: {v['message']}" for it, v in held]
    return lines
