"""Runner (grid x seeds, errors vs failures) and report writing (schema, atomicity)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from claims_engine_helpers import SLOPE_BAD, SLOPE_OK, write_claim
from hessbench.claims import report as report_mod
from hessbench.claims.report import atomic_write_text, load_report, render_markdown
from hessbench.claims.runner import ClaimSession, to_native
from hessbench.claims.spec import load_claim
from hessbench.experiments import registry
from hessbench.experiments.registry import Experiment, Measurement


def run_all(claim_path: Path, profile: str = "smoke") -> ClaimSession:
    session = ClaimSession(profile, "cpu", root=claim_path.parent.parent)
    claim = load_claim(claim_path)
    for point in claim.setup(profile).points():
        session.run(claim, point)
    return session


def test_passing_and_failing_items(claims_dir: Path) -> None:
    session = run_all(write_claim(claims_dir, body=SLOPE_OK + SLOPE_BAD))
    assert [r.item_id for r in session.results] == ["demo[slope=1.0]", "demo[slope=2.0]"]
    r = session.results[0]
    assert r.status == "fail" and r.device == "cpu" and [x.seed for x in r.records] == [0, 1]
    ok, bad = r.verdicts
    assert ok.passed and not bad.passed and "slope is 10" in bad.message
    assert session.summary == {"pass": 0, "fail": 2, "error": 0, "xfail": 0, "xpass": 0}


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
    assert rep["summary"] == {"items": 2, "pass": 0, "fail": 2, "error": 0, "xfail": 0, "xpass": 0,
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
