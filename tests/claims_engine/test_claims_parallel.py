"""``pytest claims -n 2`` (pytest-xdist): one report, written by the controller, whose items
equal a serial run's up to timings; an item whose worker dies is an error."""
from __future__ import annotations

import json

import pytest

from claims_engine_helpers import CONTROL_FALLING, CONTROL_STEEPER, SLOPE_BAD, run_pytest, \
    write_claim, write_controlled

pytest_plugins = ["pytester"]
pytest.importorskip("xdist")

#: Registers ``crashy_line``: it kills its worker process at slope 2.
CRASHY = '''
import os
from hessbench.experiments.registry import Measurement, experiment

@experiment("crashy_line", metrics=["slope_hat"])
def crashy_line(p, seed, device):
    if p["slope"] == 2.0:
        os._exit(3)
    return Measurement(metrics={"slope_hat": p["slope"]})
'''


def _untimed(entry):
    """``entry`` without what depends on scheduling, at any depth: timings (``seconds``)
    and the reuse of identical runs (``reused_from``)."""
    if isinstance(entry, dict):
        return {k: _untimed(v) for k, v in entry.items() if k not in ("seconds", "reused_from")}
    if isinstance(entry, list):
        return [_untimed(v) for v in entry]
    return entry


def _report(pytester: pytest.Pytester, name: str) -> dict:
    return json.loads((pytester.path / name / "report.json").read_text())


def test_n2_writes_one_report_equal_to_a_serial_run(pytester: pytest.Pytester) -> None:
    claims = pytester.path / "claims"
    write_claim(claims, "demo")
    write_claim(claims, "bad", body=SLOPE_BAD)
    write_controlled(claims, "ctl", controls=CONTROL_FALLING + CONTROL_STEEPER)
    serial = run_pytest(pytester, "claims", "--device", "cpu", "--claims-out", "serial")
    serial.assert_outcomes(passed=6, failed=3)

    pytester.makeconftest(CRASHY)
    write_claim(claims, "crashy", experiment="crashy_line")
    par = pytester.runpytest_subprocess("-p", "no:cacheprovider", "claims", "-n", "2",
                                        "--device", "cpu", "--claims-out", "parallel",
                                        timeout=120)
    par.stdout.fnmatch_lines(["*crashed while running*crashy*slope=2.0*"])
    par.stdout.fnmatch_lines(["11 claim items (3 controls): 7 pass, 3 fail, 1 error, "
                              "0 known failures"])
    par.assert_outcomes(passed=7, failed=4)   # xdist counts the crashed item as failed
    assert sorted(p.name for p in pytester.path.iterdir()
                  if (p / "report.json").exists()) == ["parallel", "serial"]
    ser, rep = _report(pytester, "serial"), _report(pytester, "parallel")
    items = {i["item"]: i for i in rep["items"]}
    crashed = items.pop("crashy[slope=2.0]")
    assert crashed["status"] == "error" and "crashed while running" in crashed["error"]
    assert items.pop("crashy[slope=1.0]")["status"] == "pass"
    assert [i["item"] for i in rep["items"] if not i["claim"] == "crashy"] == \
        [i["item"] for i in ser["items"]]   # collection order, not completion order
    assert [_untimed(items[i["item"]]) for i in ser["items"]] == \
        [_untimed(i) for i in ser["items"]]
    assert [_untimed(c) for c in rep["claims"] if c["id"] != "crashy"] == \
        [_untimed(c) for c in ser["claims"]]
    assert {p.name for p in (pytester.path / "parallel").iterdir()} >= \
        {"report.json", "report.md", "demo.png", "bad.png", "ctl.png"}
