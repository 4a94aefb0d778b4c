"""The pytest plugin, driven in-process through ``pytester``."""
from __future__ import annotations

import json

import pytest
import torch

from claims_engine_helpers import CONTROL_FALLING, CONTROL_STEEPER, SLOPE_BAD, SLOPE_OK, \
    run_pytest, write_claim, write_controlled
from hessbench.experiments import registry
from hessbench.experiments.registry import Experiment, Measurement

# Registered from this module (pytest rejects pytest_plugins in non-top-level conftests).
pytest_plugins = ["pytester"]


@pytest.fixture
def claims(pytester: pytest.Pytester):
    return pytester.path / "claims"


run = run_pytest


def run_demo(pytester: pytest.Pytester, claims, body: str, **outcomes: int) -> pytest.RunResult:
    """Run claim ``demo`` with expectations ``body`` on the CPU, the report into ``out``;
    asserts the outcomes and that the report's three files were written."""
    write_claim(claims, "demo", body=body)
    res = run(pytester, "claims", "--device", "cpu", "--claims-out", "out")
    res.assert_outcomes(**outcomes)
    out = pytester.path / "out"
    assert {p.name for p in out.iterdir()} == {"report.json", "report.md", "demo.png"}
    return res


def test_one_item_per_grid_point_with_markers(pytester: pytest.Pytester, claims) -> None:
    write_claim(claims, "demo")
    res = run(pytester, "claims", "--collect-only", "-q", "--device", "cpu")
    res.stdout.fnmatch_lines(["claims/demo.toml::demo[[]slope=1.0[]]",
                              "claims/demo.toml::demo[[]slope=2.0[]]", "2 tests collected*"])
    assert run(pytester, "claims", "--co", "-m", "claim").ret == 0
    smoke_gpu = run(pytester, "claims", "--co", "-m", "gpu or slow")
    assert smoke_gpu.ret == pytest.ExitCode.NO_TESTS_COLLECTED  # deselected, not masked
    paper = run(pytester, "claims", "--co", "-q", "-m", "gpu and slow", "--profile", "paper")
    paper.stdout.fnmatch_lines(["2 tests collected*"])


def test_k_selects_claim_ids(pytester: pytest.Pytester, claims) -> None:
    write_claim(claims, "alpha")
    write_claim(claims, "beta-claim")
    res = run(pytester, "claims", "-k", "beta-claim", "--device", "cpu",
                             "--claims-out", "out")
    res.assert_outcomes(passed=2, deselected=2)
    items = json.loads((pytester.path / "out" / "report.json").read_text())["items"]
    assert [i["item"] for i in items] == ["beta-claim[slope=1.0]", "beta-claim[slope=2.0]"]
    res = run(pytester, "claims", "-k", "alpha and slope=2.0", "--device", "cpu")
    assert res.ret == pytest.ExitCode.USAGE_ERROR  # '=' is no -k identifier: pytest says so
    run(pytester, "claims", "-k", "alpha and 2.0", "--device", "cpu").assert_outcomes(
        passed=1, deselected=3)


def test_passing_run_prints_table_and_writes_report(pytester: pytest.Pytester, claims) -> None:
    res = run_demo(pytester, claims, SLOPE_OK, passed=2)
    # compact by default: one line per item, no full table when everything passed
    res.stdout.fnmatch_lines([
        "*= hessbench claims (profile smoke, device cpu) =*",
        "demo[[]slope=1.0[]]",
        "  PASS · * s · all 1 expectation(s) hold",
        "2 claim items (0 controls): 2 pass, 0 fail, 0 error, 0 known failures",
    ])
    assert "grid point" not in res.stdout.str()
    res = run(pytester, "claims", "--device", "cpu", "--claims-out", "out-v", "-v")
    res.stdout.fnmatch_lines([
        "*claim*grid point*measured*expected*verdict*seconds*device*",
        *[f"*demo*slope={s}*slope recovered: *{s:g} ± 0.05 (all 2 seeds)*PASS*cpu*"
          for s in (1.0, 2.0)],
        "2 claim items (0 controls): 2 pass, 0 fail, 0 error, 0 known failures",
        f"report: {pytester.path / 'out-v' / 'report.md'}",
    ])


def test_default_report_dir_is_under_rootdir(pytester: pytest.Pytester, claims) -> None:
    write_claim(claims, "demo")
    run(pytester, "claims", "--device", "cpu").assert_outcomes(passed=2)
    results = pytester.path / "results" / "claims"
    [run_dir] = [p for p in results.iterdir() if p.name != "latest"]
    assert (run_dir / "report.json").exists()
    assert (results / "latest").resolve() == run_dir.resolve()


def test_failure_shows_claim_table_not_traceback(pytester: pytest.Pytester, claims) -> None:
    res = run_demo(pytester, claims, SLOPE_BAD, failed=2)
    res.stdout.fnmatch_lines([
        "claim demo[[]slope=1.0[]] FAILED (profile smoke, device cpu, seeds [[]0, 1[]], *",
        "statement: The fitted slope of a noisy line equals its true slope.",
        "source:    Example (2024), not a paper, Sec. 0, Fig. 0",
        "*expectation*measured*expected*verdict*",
        "*slope is 10*10 ± 0.5 (all 2 seeds)*FAIL*",
        "- slope is 10: measured *; expected 10 ± 0.5 (all 2 seeds) -> FAIL: seed 0: *missed by*",
        "  reason: a deliberately false claim to test failure reporting",
    ])
    text = res.stdout.str()
    assert "Traceback" not in text and "raise ClaimFailed" not in text and ".py:" not in text


def test_experiment_exception_is_an_error_item(pytester: pytest.Pytester, claims,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(params: dict, seed: int, device: torch.device) -> Measurement:
        raise RuntimeError("boom in the experiment")

    monkeypatch.setitem(registry.REGISTRY, "broken", Experiment("broken", broken))
    write_claim(claims, "demo", experiment="broken")
    res = run(pytester, "claims", "--device", "cpu", "--claims-out", "out")
    res.assert_outcomes(errors=2)
    res.stdout.fnmatch_lines(["*ERROR at setup of claim demo [[]slope=1.0[]]*",
                              "*raise RuntimeError(\"boom in the experiment\")*",
                              "E*RuntimeError: boom in the experiment",
                              "*demo*slope=1.0*error: RuntimeError: boom in the experiment*-*ERROR*cpu*"])
    items = json.loads((pytester.path / "out" / "report.json").read_text())["items"]
    assert [i["status"] for i in items] == ["error", "error"]


def test_invalid_claim_file_is_a_collection_error(pytester: pytest.Pytester, claims) -> None:
    write_claim(claims, "demo", sections="[grid]\nslope = 1.0\n")
    res = run(pytester, "claims")
    assert res.ret == pytest.ExitCode.INTERRUPTED
    res.stdout.fnmatch_lines(["*claims/demo.toml: grid.slope: bad grid: must be a non-empty list*"])
    assert "Traceback" not in res.stdout.str()


def test_only_claim_files_are_collected(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml("[tool.pytest.ini_options]\n")
    write_claim(pytester.path / "tests" / "claims", "fixture-claim")
    write_claim(pytester.path / "data", "not-in-claims-dir")
    (pytester.path / "claims").mkdir()
    (pytester.path / "claims" / "_draft.toml").write_text("not a claim")
    pytester.makepyfile(**{"tests/test_plain": "def test_plain():\n    assert True\n"})
    res = run(pytester, )
    res.assert_outcomes(passed=1)
    assert "hessbench claims" not in res.stdout.str() and "claim items" not in res.stdout.str()
    res = run(pytester, "tests")
    res.assert_outcomes(passed=1)
    assert "hessbench claims" not in res.stdout.str() and not (pytester.path / "results").exists()


def test_empty_claims_folder_exits_zero(pytester: pytest.Pytester, claims) -> None:
    claims.mkdir()
    res = run(pytester, "claims")
    assert res.ret == pytest.ExitCode.OK
    res.stdout.fnmatch_lines(["hessbench: no claim files (claims/<id>.toml) found; nothing to verify"])
    # other empty selections keep pytest's "no tests" status
    (pytester.path / "empty").mkdir()
    assert run(pytester, "empty").ret == pytest.ExitCode.NO_TESTS_COLLECTED


def test_interrupted_run_still_writes_a_complete_report(pytester: pytest.Pytester, claims,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    line = registry.REGISTRY["example_line"]

    def stop_at_slope_2(params: dict, seed: int, device: torch.device) -> Measurement:
        if params["slope"] == 2.0:
            raise KeyboardInterrupt
        return line(params, seed, device)

    monkeypatch.setitem(registry.REGISTRY, "stops", Experiment("stops", stop_at_slope_2))
    write_claim(claims, "demo", experiment="stops")
    res = run(pytester, "claims", "--device", "cpu", "--claims-out", "out",
              no_reraise_ctrlc=True)
    assert res.ret == pytest.ExitCode.INTERRUPTED
    report = json.loads((pytester.path / "out" / "report.json").read_text())
    assert report["interrupted"] is True
    assert [(i["item"], i["status"]) for i in report["items"]] == [("demo[slope=1.0]", "pass")]


def test_claims_conftest_is_optional(pytester: pytest.Pytester, claims) -> None:
    write_claim(claims, "demo")
    (claims / "conftest.py").write_text("import pytest\n\n\n@pytest.fixture\ndef unused():\n"
                                        "    return 1\n")
    run(pytester, "claims", "--device", "cpu", "--claims-out", "out").assert_outcomes(passed=2)


def test_known_failure_is_one_word_with_its_measured_miss_beside_the_note(
        pytester: pytest.Pytester, claims) -> None:
    """pytest counts an XFAIL, but its -v line, the summary, report.md and report.json say
    "known failure", and each shows this run's miss next to the note; a pass against the
    note is a failure asking to remove it."""
    note = "slope 1.0 is not 10 (a deliberate miss, for the test)"
    write_claim(claims, "known", body=SLOPE_BAD,
                sections=f'[params]\nnoise = 0.01\nslope = 1.0\n\n[profiles.smoke]\n'
                         f'known_failure = "{note}"\n')
    res = run(pytester, "claims", "--device", "cpu", "--claims-out", "out", "-rx", "-v")
    res.assert_outcomes(xfailed=1)
    assert res.ret == 0
    live = "slope is 10: measured 0.9957, 0.9855; expected 10 ± 0.5 (all 2 seeds)"
    res.stdout.fnmatch_lines([
        "*known.toml::known KNOWN FAILURE*",
        "  KNOWN FAILURE · * · slope is 10: 0.9957, 0.9855",
        "known failures: this run beside the note",   # with -v
        "known",
        f"  measured in this run: {live}",
        f"  note (as recorded in the claim file): {note}",
        "1 claim item (0 controls): 0 pass, 0 fail, 0 error, 1 known failure",
        f"KNOWN FAILURE *known failure at profile smoke: measured in this run: {live} || "
        f"note (as recorded in the claim file): {note}",
        "*= 1 xfailed in *"])   # pytest's own count keeps its word
    assert "FAIL (known)" not in res.stdout.str()
    report = json.loads((pytester.path / "out" / "report.json").read_text())
    assert report["items"][0]["status"] == "known_failure"
    assert report["summary"]["known_failure"] == 1 and "xfail" not in report["summary"]
    assert report["items"][0]["known_failure"] == report["claims"][0]["known_failure"] == note
    assert report["items"][0]["known_failure_measured"] == live
    md = (pytester.path / "out" / "report.md").read_text()
    assert f"**Known failure at this profile**. Note, as recorded in the claim file" in md
    assert f"Measured in this run:\n\n- `-` (KNOWN FAILURE): {live}" in md
    assert "| - | KNOWN FAILURE |" in md and "1 known failure**" in md
    # the same note on a claim that holds: strict, a failure telling to remove the note
    write_claim(claims, "known", sections=f'[params]\nnoise = 0.01\nslope = 1.0\n\n'
                                          f'[profiles.smoke]\nknown_failure = "{note}"\n')
    res = run(pytester, "claims", "--device", "cpu", "--claims-out", "out2")
    res.assert_outcomes(failed=1)
    res.stdout.fnmatch_lines(["*remove `known_failure`*"])


def test_known_failure_must_say_what_missed(pytester: pytest.Pytester, claims) -> None:
    write_claim(claims, "known", sections='[params]\nnoise = 0.01\nslope = 1.0\n\n'
                                          '[profiles.smoke]\nknown_failure = ""\n')
    res = run(pytester, "claims")
    assert res.ret != 0
    res.stdout.fnmatch_lines(["*profiles.smoke.known_failure*non-empty*"])


# --------------------------------------------------------------------------- controls
def test_controls_are_items_and_k_control_selects_them(pytester: pytest.Pytester,
                                                       claims) -> None:
    write_controlled(claims, "demo")
    no_grid = CONTROL_FALLING.replace("grid = { slope = [-1.0, -2.0] }",
                                      "params = { slope = -1.0 }")
    write_controlled(claims, "flat", sections="[params]\nnoise = 0.01\nslope = 1.0\n",
                     controls=no_grid)
    res = run(pytester, "claims", "--collect-only", "-q", "--device", "cpu")
    res.stdout.fnmatch_lines(["claims/demo.toml::demo[[]slope=1.0[]]",
                              "claims/demo.toml::demo[[]slope=2.0[]]",
                              "claims/demo.toml::demo[[]control-falling-slope=-1.0[]]",
                              "claims/demo.toml::demo[[]control-falling-slope=-2.0[]]",
                              "claims/flat.toml::flat",
                              "claims/flat.toml::flat[[]control-falling[]]",
                              "6 tests collected*"])
    paper = run(pytester, "claims", "--co", "-q", "-m", "claim and gpu and slow",
                "--profile", "paper")
    paper.stdout.fnmatch_lines(["6 tests collected*"])  # controls carry the same markers
    res = run(pytester, "claims", "-k", "control", "--device", "cpu", "--claims-out", "out")
    res.assert_outcomes(passed=3, deselected=3)
    items = json.loads((pytester.path / "out" / "report.json").read_text())["items"]
    assert {i["kind"] for i in items} == {"control"} and len(items) == 3
    run(pytester, "claims", "-k", "not control", "--device", "cpu").assert_outcomes(
        passed=3, deselected=3)


def test_control_that_holds_fails_with_the_measured_values(pytester: pytest.Pytester,
                                                           claims) -> None:
    write_controlled(claims, "demo", controls=CONTROL_FALLING + CONTROL_STEEPER)
    res = run(pytester, "claims", "--device", "cpu", "--claims-out", "out")
    res.assert_outcomes(passed=4, failed=1)
    res.stdout.fnmatch_lines([
        "control demo[[]control-steeper-slope=3.0[]] FAILED (profile smoke, device cpu, "
        "seeds [[]0, 1[]], *): the claim's test would pass without the effect",
        "held in the control (predicted to fail): slope positive",
        "control reason: Example (2024), Sec. 0: a deliberately wrong control, for the test",
        "statement: The fitted slope of a noisy line equals its true slope.",
        "*expectation*measured*expected*predicted*verdict*",
        "*slope positive*2.996, 2.986*> 0 (all 2 seeds)*fail*PASS*",
        "- slope positive: measured 2.996, 2.986; expected > 0 (all 2 seeds) -> pass",
    ])
    res.stdout.fnmatch_lines([
        "demo[[]control-falling-slope=-1.0[]]",
        "  PASS · * s · failed as predicted: slope positive: -1.004, -1.014",
        "demo[[]control-steeper-slope=3.0[]]",
        "  FAIL · * s · HELD (predicted to fail): slope positive: 2.996, 2.986",
        "*measured against expected (items that failed)*",
        "*demo*control-steeper-slope=3.0*[[]HELD, predicted fail[]] slope positive: 2.996*FAIL*",
        "5 claim items (3 controls): 4 pass, 1 fail, 0 error, 0 known failures",
    ])
    assert "Traceback" not in res.stdout.str()
    report = json.loads((pytester.path / "out" / "report.json").read_text())
    assert [c["status"] for c in report["claims"][0]["controls"]] == ["pass", "fail"]
    assert {p.name for p in (pytester.path / "out").iterdir()} == {"report.json", "report.md",
                                                                   "demo.png"}


def test_control_naming_an_unknown_expectation_is_a_collection_error(
        pytester: pytest.Pytester, claims) -> None:
    write_controlled(claims, "demo", controls=CONTROL_FALLING.replace('["slope positive"]',
                                                                      '["slope rises"]'))
    res = run(pytester, "claims")
    assert res.ret == pytest.ExitCode.INTERRUPTED
    res.stdout.fnmatch_lines(["*claims/demo.toml: controls[[]0[]].expect_fail: control "
                              "'falling': unknown expectation name(s) [[]'slope rises'[]]; the "
                              "claim's expectations: 'slope positive'*"])
