"""Runner (grid x seeds, errors vs failures) and report writing (schema, atomicity)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import torch

from claims_engine_helpers import CONTROL_FALLING, CONTROL_STEEPER, SLOPE_BAD, SLOPE_OK, \
    SLOPE_POSITIVE, write_claim, write_controlled
from hessbench.claims.errors import ClaimSpecError
from hessbench.claims import report as report_mod
from hessbench.claims.report import atomic_write_text, load_report, render_markdown
from hessbench.claims.runner import ClaimSession, to_native
from hessbench.claims.spec import load_claim
from hessbench.experiments import registry
from hessbench.experiments.registry import Experiment, Measurement


def run_all(claim_path: Path, profile: str = "smoke", **kw: Any) -> ClaimSession:
    """Every item of the claim (its controls too) in a CPU session (``kw``: its seeds)."""
    session = ClaimSession(profile, "cpu", root=claim_path.parent.parent, **kw)
    claim = load_claim(claim_path)
    for setup, point in session.plan(claim):
        session.run(claim, setup, point)
    return session


def test_passing_and_failing_items(claims_dir: Path) -> None:
    session = run_all(write_claim(claims_dir, body=SLOPE_OK + SLOPE_BAD))
    assert [r.item_id for r in session.results] == ["demo[slope=1.0]", "demo[slope=2.0]"]
    r = session.results[0]
    assert r.status == "fail" and r.device == "cpu" and [x.seed for x in r.records] == [0, 1]
    ok, bad = r.verdicts
    assert ok.passed and not bad.passed and "slope is 10" in bad.message
    assert session.summary == {"pass": 0, "fail": 2, "error": 0,
                               "known_failure": 0, "known_failure_passed": 0}


def test_experiment_exception_is_an_error_not_a_failure(claims_dir: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(params: dict, seed: int, device: torch.device) -> Measurement:
        raise RuntimeError("boom in the experiment")

    monkeypatch.setitem(registry.REGISTRY, "broken", Experiment("broken", broken))
    [r, _] = run_all(write_claim(claims_dir, experiment="broken")).results
    assert r.status == "error" and isinstance(r.exception, RuntimeError)
    assert "boom in the experiment" in r.error and "Traceback" in r.error


@pytest.mark.parametrize("metrics, words", [({"slope_hat": "high"}, "must be a number"),
                                            ({"slope_hat": 1.0, "extra": 1}, "undeclared"),
                                            ({"other": 1.0}, "returned no metric 'slope_hat'")])
def test_bad_measurements_are_errors(claims_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                     metrics: dict, words: str) -> None:
    declared = frozenset({"slope_hat", "other"})
    monkeypatch.setitem(registry.REGISTRY, "odd", Experiment(
        "odd", lambda p, s, d: Measurement(metrics=metrics), metrics=declared))
    r = run_all(write_claim(claims_dir, experiment="odd")).results[0]
    assert r.status == "error" and words in r.error


def test_to_native_converts_numpy_and_torch() -> None:
    import numpy as np

    out = to_native({"a": np.float32(1.5), "b": torch.tensor([1, 2]), "c": np.arange(2),
                     "d": (1, 2)}, "metrics")
    assert out == {"a": 1.5, "b": [1, 2], "c": [0, 1], "d": [1, 2]}
    with pytest.raises(TypeError, match=r"metrics\.e: object"):
        to_native({"e": object()}, "metrics")


def test_report_files_schema_and_roundtrip(claims_dir: Path) -> None:
    session = run_all(write_claim(claims_dir, body=SLOPE_OK + SLOPE_BAD))
    out = session.write_report(claims_dir.parent / "out")
    assert {p.name for p in out.iterdir()} == {"report.json", "report.md", "demo.png"}
    rep = load_report(out)
    assert rep["schema_version"] == report_mod.SCHEMA_VERSION and rep["profile"] == "smoke"
    assert rep["device"] == "cpu" and rep["environment"]["torch"] == torch.__version__
    assert rep["summary"] == {"items": 2, "controls": 0, "pass": 0, "fail": 2, "error": 0,
                              "known_failure": 0, "known_failure_passed": 0,
                              "seconds": pytest.approx(sum(r.seconds for r in session.results))}
    [claim] = rep["claims"]
    assert claim["figure"] == {"path": "demo.png", "error": None} and claim["status"] == "fail"
    item = rep["items"][0]
    assert item["records"][0]["metrics"]["slope_hat"] == session.results[0].records[0].metrics[
        "slope_hat"]
    assert [v["verdict"] for v in item["verdicts"]] == ["pass", "fail"]
    md = (out / "report.md").read_text()
    assert md == render_markdown(rep)
    for text in ("The fitted slope of a noisy line", "Example (2024), not a paper, Sec. 0",
                 "![demo](demo.png)", "| slope=1.0 | slope is 10 |", "FAIL"):
        assert text in md
    assert (out / "demo.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_figure_error_is_recorded_and_report_kept(claims_dir: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    exp = registry.REGISTRY["example_line"]

    def bad_figure(records: list) -> None:
        raise ValueError("figure went wrong")

    monkeypatch.setitem(registry.REGISTRY, "example_line",
                        Experiment(exp.name, exp.func, bad_figure, exp.metrics))
    out = run_all(write_claim(claims_dir)).write_report(claims_dir.parent / "out")
    fig = load_report(out)["claims"][0]["figure"]
    assert fig["path"] is None and "figure went wrong" in fig["error"]
    assert "Figure failed" in (out / "report.md").read_text()
    assert not (out / "demo.png").exists()


def test_nan_metrics_are_written_as_strings(claims_dir: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry.REGISTRY, "nan", Experiment(
        "nan", lambda p, s, d: Measurement(metrics={"slope_hat": float("nan")})))
    session = run_all(write_claim(claims_dir, experiment="nan"))
    assert session.results[0].status == "fail"  # NaN is never within a tolerance
    out = session.write_report(claims_dir.parent / "out")
    text = (out / "report.json").read_text()
    assert "NaN" not in text and json.loads(text)["items"][0]["records"][0]["metrics"] == {
        "slope_hat": "nan"}


def test_atomic_write_never_leaves_a_truncated_file(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "report.json"
    atomic_write_text(target, "old complete report")

    def interrupted(src: str, dst: str) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_text(target, "new report that never lands")
    assert target.read_text() == "old complete report"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]  # temp file cleaned up
    monkeypatch.undo()
    atomic_write_text(target, "new")
    assert target.read_text() == "new" and oct(target.stat().st_mode & 0o777) == "0o644"


def test_load_report_rejects_other_files(tmp_path: Path) -> None:
    (tmp_path / "report.json").write_text(json.dumps({"schema": "other"}))
    with pytest.raises(ValueError, match="not a hessbench claims report"):
        load_report(tmp_path)
    (tmp_path / "report.json").write_text(json.dumps({"schema": report_mod.SCHEMA,
                                                      "schema_version": 99}))
    with pytest.raises(ValueError, match="schema_version 99"):
        load_report(tmp_path)


def test_default_out_dir_is_under_root_and_unique(tmp_path: Path) -> None:
    session = ClaimSession("smoke", "cpu", root=tmp_path)
    first = session.default_out_dir()
    assert first.parent == tmp_path / "results" / "claims"
    first.mkdir(parents=True)
    assert session.default_out_dir() == first.with_name(first.name + "-1")


def test_cuda_request_without_gpu_is_a_clear_error() -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ValueError, match="torch.cuda.is_available"):
        ClaimSession("smoke", "cuda")


# --------------------------------------------------------------------------- controls
def test_control_passes_when_its_expectations_fail(claims_dir: Path) -> None:
    session = run_all(write_controlled(claims_dir, controls=CONTROL_FALLING + CONTROL_STEEPER))
    by_id = {r.item_id: r for r in session.results}
    assert list(by_id) == ["demo[slope=1.0]", "demo[slope=2.0]", "demo[control-falling-slope=-1.0]",
                           "demo[control-falling-slope=-2.0]", "demo[control-steeper-slope=3.0]"]
    falling = by_id["demo[control-falling-slope=-1.0]"]
    assert falling.status == "pass" and falling.held == [] and not falling.verdicts[0].passed
    steeper = by_id["demo[control-steeper-slope=3.0]"]
    assert steeper.status == "fail" and steeper.held == ["slope positive"]
    item = steeper.to_dict()
    assert (item["kind"], item["control"], item["label"]) == ("control", "steeper",
                                                              "control-steeper-slope=3.0")
    assert item["expect_fail"] == ["slope positive"] and item["held"] == ["slope positive"]
    assert by_id["demo[slope=1.0]"].to_dict()["kind"] == "claim"
    assert session.summary_line() == "5 claim items (3 controls): 4 pass, 1 fail, 0 error, " \
                                     "0 known failures"


def test_known_failure_does_not_apply_to_controls(claims_dir: Path) -> None:
    sections = ('[params]\nnoise = 0.01\n\n[grid]\nslope = [1.0]\n\n[profiles.smoke]\n'
                'known_failure = "a note, for the test"\n')
    session = run_all(write_controlled(claims_dir, sections=sections,
                                       controls=CONTROL_FALLING + CONTROL_STEEPER))
    assert [r.status for r in session.results] == ["known_failure_passed", "pass", "pass",
                                                          "fail"]


def test_known_failure_can_cover_some_grid_points_only(claims_dir: Path) -> None:
    """known_failure = { note, points }: the named points are known failures, the
    others are judged as usual (a pass elsewhere is not a pass against the note), and the
    report says which."""
    sections = ('[params]\nnoise = 0.01\n\n[grid]\nslope = [1.0, -1.0]\n\n[profiles.smoke]\n'
                'known_failure = { note = "falls at -1, for the test", points = ["slope=-1.0"] }\n')
    session = run_all(write_claim(claims_dir, body=SLOPE_POSITIVE, sections=sections))
    assert [r.status for r in session.results] == ["pass", "known_failure"]
    items = {r.item_id: r.to_dict() for r in session.results}
    assert items["demo[slope=1.0]"]["known_failure"] is None
    assert items["demo[slope=-1.0]"]["known_failure"] == "falls at -1, for the test"
    out = session.write_report(claims_dir.parent / "out")
    assert "Known failure at points slope=-1.0" in (out / "report.md").read_text()
    assert json.loads((out / "report.json").read_text())["claims"][0][
        "known_failure_points"] == ["slope=-1.0"]


def test_figure_panel_of_a_claim_that_does_not_replicate_is_stamped(claims_dir: Path) -> None:
    """The claim's panel says KNOWN FAILURE when one of its items is a known failure; a
    passing control keeps its plain title."""
    sections = ('[params]\nnoise = 0.01\n\n[grid]\nslope = [1.0, -1.0]\n\n[profiles.smoke]\n'
                'known_failure = { note = "falls at -1, for the test", points = ["slope=-1.0"] }\n')
    session = run_all(write_claim(claims_dir, body=SLOPE_POSITIVE, sections=sections,
                                  no_control=None, controls=CONTROL_FALLING))
    items = [r.to_dict() for r in session.results]
    claim = session.results[0].claim.to_dict("smoke")
    titles = [t for t, _ in report_mod._panels(claim, items)]
    assert titles[0].startswith("claim: KNOWN FAILURE")
    assert titles[1] == "control falling: expectations failed as predicted"


def test_figure_records_name_the_tested_metrics(claims_dir: Path) -> None:
    """A claim panel's records name every expectation's metrics, a control panel's those
    of its expect_fail expectations only."""
    session = run_all(write_claim(claims_dir, body=SLOPE_POSITIVE + SLOPE_BAD.replace(
        "slope_hat", "intercept_hat"), no_control=None, controls=CONTROL_FALLING))
    items = [r.to_dict() for r in session.results]
    panels = report_mod._panels(session.results[0].claim.to_dict("smoke"), items)
    assert [sorted({tuple(r["tested_metrics"]) for r in recs}) for _, recs in panels] == [
        [("intercept_hat", "slope_hat")], [("slope_hat",)]]


@pytest.mark.parametrize("value, match", [
    ('{ note = "x", points = ["slope=9.0"] }', r"unknown grid point\(s\) \['slope=9.0'\]"),
    ('{ note = "x" }', "exactly the keys 'note' and 'points'"),
    ('{ note = "x", points = [] }', "non-empty list of grid point ids"),
    ('{ note = "", points = ["slope=1.0"] }', "non-empty string"),
])
def test_bad_known_failure_points_are_load_errors(claims_dir: Path, value: str,
                                                  match: str) -> None:
    sections = ('[params]\nnoise = 0.01\n\n[grid]\nslope = [1.0, -1.0]\n\n[profiles.smoke]\n'
                f'known_failure = {value}\n')
    with pytest.raises(ClaimSpecError, match=match):
        load_claim(write_claim(claims_dir, body=SLOPE_POSITIVE, sections=sections))


def test_identical_runs_are_measured_once_per_session(claims_dir: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Two claims whose items have the same experiment, params and seeds: the second
    reuses the first's records (marked reused_from, 0 s), the experiment runs once per seed."""
    line = registry.REGISTRY["example_line"]
    calls: list[int] = []

    def counted(params: dict, seed: int, device: torch.device) -> Measurement:
        calls.append(seed)
        return line(params, seed, device)

    monkeypatch.setitem(registry.REGISTRY, "counted", Experiment("counted", counted))
    sections = '[params]\nnoise = 0.01\nslope = 1.0\n'
    session = ClaimSession("smoke", "cpu", root=claims_dir.parent)
    for cid in ("first", "second"):
        claim = load_claim(write_claim(claims_dir, cid, sections=sections, experiment="counted"))
        for setup, point in session.plan(claim):
            session.run(claim, setup, point)
    assert calls == [0, 1]
    first, second = session.results
    assert [r.reused_from for r in first.records] == [None, None]
    assert [r.reused_from for r in second.records] == ["first", "first"]
    assert [r.metrics for r in second.records] == [r.metrics for r in first.records]
    assert second.to_dict()["records"][0]["reused_from"] == "first"


def test_control_experiment_exception_is_an_error(claims_dir: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    line = registry.REGISTRY["example_line"]

    def breaks_when_falling(params: dict, seed: int, device: torch.device) -> Measurement:
        if params["slope"] < 0:
            raise RuntimeError("boom in the control")
        return line(params, seed, device)

    monkeypatch.setitem(registry.REGISTRY, "breaks", Experiment("breaks", breaks_when_falling))
    session = run_all(write_controlled(claims_dir, experiment="breaks"))
    assert [r.status for r in session.results] == ["pass", "pass", "error", "error"]
    assert "boom in the control" in session.results[2].error


def test_report_shows_controls_beside_their_claim(claims_dir: Path) -> None:
    import matplotlib.image

    session = run_all(write_controlled(claims_dir, controls=CONTROL_FALLING + CONTROL_STEEPER))
    out = session.write_report(claims_dir.parent / "out")
    rep = load_report(out)
    assert rep["summary"]["controls"] == 3 and rep["summary"]["items"] == 5
    [claim] = rep["claims"]
    assert claim["status"] == "pass" and claim["items"] == ["demo[slope=1.0]", "demo[slope=2.0]"]
    assert [(c["name"], c["status"], c["held"], c["items"]) for c in claim["controls"]] == [
        ("falling", "pass", [], ["demo[control-falling-slope=-1.0]",
                                 "demo[control-falling-slope=-2.0]"]),
        ("steeper", "fail", ["slope positive"], ["demo[control-steeper-slope=3.0]"])]
    assert claim["controls"][0]["reason"].startswith("Example (2024), Sec. 0: a falling line")
    assert claim["controls"][1]["expect_fail"] == ["slope positive"] and claim["no_control"] is None
    assert [i["kind"] for i in rep["items"]] == ["claim"] * 2 + ["control"] * 3
    md = (out / "report.md").read_text()
    assert md == render_markdown(rep)
    for text in ("## demo: Demo line (PASS; controls: falling PASS, steeper FAIL)",
                 "5 items (3 controls): 4 pass, 1 fail",
                 "| demo | control-falling-slope=-1.0 | PASS |",
                 "### control falling: expectations failed as predicted (PASS)",
                 "### control steeper: CONTROL FAILED: slope positive held (FAIL)",
                 "Expected to fail: slope positive.", "Changes: grid {'slope': [3.0]}.",
                 "| grid point | expectation | measured | expected | predicted | verdict |",
                 "| control-steeper-slope=3.0 | slope positive | 2.996, 2.986 | > 0 (all 2 seeds) "
                 "| fail | PASS |",
                 "Held in the control (the claim's test would pass without the effect):"):
        assert text in md, text
    assert claim["figure"] == {"path": "demo.png", "error": None}
    png = matplotlib.image.imread(out / "demo.png")  # three panels side by side
    alone = matplotlib.image.imread(run_all(write_claim(claims_dir, "alone")).write_report(
        claims_dir.parent / "out-alone") / "alone.png")
    assert png.shape[1] > 2.5 * alone.shape[1]


def test_a_failing_control_figure_is_recorded(claims_dir: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    exp = registry.REGISTRY["example_line"]

    def fails_when_falling(records: list) -> object:
        if records[0]["params"]["slope"] < 0:
            raise ValueError("control figure went wrong")
        return exp.figure(records)

    monkeypatch.setitem(registry.REGISTRY, "example_line",
                        Experiment(exp.name, exp.func, fails_when_falling, exp.metrics))
    out = run_all(write_controlled(claims_dir)).write_report(claims_dir.parent / "out")
    fig = load_report(out)["claims"][0]["figure"]
    assert fig["path"] == "demo.png" and (out / "demo.png").exists()  # the claim's panel
    assert fig["error"].startswith("control falling: expectations failed as predicted:\n")
    assert "control figure went wrong" in fig["error"]
    assert "Figure failed" in (out / "report.md").read_text()


def test_seeds_override_is_recorded(claims_dir: Path) -> None:
    session = run_all(write_controlled(claims_dir), seeds=[3, 4, 5])
    assert {r.setup.seeds for r in session.results} == {(3, 4, 5)}
    out = session.write_report(claims_dir.parent / "out")
    rep = load_report(out)
    assert rep["seeds_override"] == [3, 4, 5]
    assert {(tuple(i["seeds"]), tuple(i["declared_seeds"]), tuple(i["seeds_override"]))
            for i in rep["items"]} == {((3, 4, 5), (0, 1), (3, 4, 5))}
    assert [r["seed"] for r in rep["items"][2]["records"]] == [3, 4, 5]
    md = (out / "report.md").read_text()
    assert "**seeds overridden: not the declared run**: every item ran seeds [3, 4, 5]" in md
    plain = load_report(run_all(write_controlled(claims_dir)).write_report(
        claims_dir.parent / "plain"))
    assert plain["seeds_override"] is None and plain["items"][0]["seeds_override"] is None
    with pytest.raises(ValueError, match="distinct non-negative"):
        ClaimSession("smoke", "cpu", seeds=[1, 1])


def test_compact_summary_fits_80_columns_and_never_breaks_an_id(claims_dir: Path) -> None:
    """Two lines per item: the id (whole), then verdict, seconds and the deciding
    expectation, wrapped inside 80 columns."""
    from hessbench.claims.table import compact_table, to_text

    session = run_all(write_controlled(claims_dir, "a-long-claim-id-for-the-width",
                                       controls=CONTROL_FALLING + CONTROL_STEEPER))
    items = [r.to_dict() for r in session.results]
    text = to_text(compact_table(items), 80)
    lines = [line.rstrip() for line in text.splitlines()]
    assert all(len(line) <= 80 for line in lines)
    for it in items:
        assert it["item"] in lines, it["item"]
    # an id longer than the width is printed whole, not cropped
    long = {**items[0], "item": "x" * 90}
    assert "x" * 90 in to_text(compact_table([long]), 80)
    assert "HELD (predicted to fail): slope positive: 2.996, 2.986" in text
    # a control that failed as predicted shows what it measured (e.g. the tanh counts)
    assert "failed as predicted: slope positive: -1.004, -1.014" in text


def test_summary_line_grammar() -> None:
    from hessbench.claims.status import summary_line

    counts = {"pass": 1, "fail": 0, "error": 0, "known_failure": 1}
    assert summary_line(counts, 1, 0) == ("1 claim item (0 controls): 1 pass, 0 fail, 0 error, "
                                          "1 known failure")
    assert summary_line({**counts, "known_failure": 2, "known_failure_passed": 1}, 2, 1) == (
        "2 claim items (1 control): 1 pass, 0 fail, 0 error, 2 known failures, "
        "1 passed against a known-failure note")


def as_schema_2(report: dict[str, Any]) -> dict[str, Any]:
    """``report`` as hessbench wrote it before "known failure" was the one word."""
    old = {"known_failure": "xfail", "known_failure_passed": "xpass"}
    report = json.loads(json.dumps(report))
    report["schema_version"] = 2
    report["summary"] = {old.get(k, k): v for k, v in report["summary"].items()}
    for group in [*report["claims"], *(c for cl in report["claims"] for c in cl["controls"])]:
        group["status"] = old.get(group["status"], group["status"])
    for it in report["items"]:
        it["status"] = old.get(it["status"], it["status"])
        del it["known_failure_measured"]
    return report


def test_a_schema_2_report_is_read_with_the_new_words(claims_dir: Path) -> None:
    sections = ('[params]\nnoise = 0.01\n\n[grid]\nslope = [1.0]\n\n[profiles.smoke]\n'
                'known_failure = "slope 1 is not 10, for the test"\n')
    out = run_all(write_claim(claims_dir, body=SLOPE_BAD, sections=sections)).write_report(
        claims_dir.parent / "out")
    new = load_report(out)
    atomic_write_text(out / "report.json", json.dumps(as_schema_2(new)))
    upgraded = load_report(out)
    assert upgraded["schema_version"] == 3 and upgraded["summary"]["known_failure"] == 1
    assert upgraded["items"][0]["status"] == upgraded["claims"][0]["status"] == "known_failure"
    assert upgraded["items"][0]["known_failure_measured"] == new["items"][0][
        "known_failure_measured"]
    assert "KNOWN FAILURE" in render_markdown(upgraded)
    atomic_write_text(out / "report.json", json.dumps({**new, "schema_version": 1}))
    with pytest.raises(ValueError, match="schema_version 1 is not supported .* versions 2 "
                                         "and 3"):
        load_report(out)
