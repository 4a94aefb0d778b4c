"""``hessbench claims list|run|report``: output and exit codes (0 pass, 1 fail, 2 usage)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from claims_engine_helpers import CONTROL_FALLING, CONTROL_STEEPER, SLOPE_BAD, write_claim, \
    write_controlled
from hessbench.cli import main


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_list(claims_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_claim(claims_dir, "demo")
    code, out = cli(capsys, "claims", "list", "--claims-dir", str(claims_dir))
    assert code == 0
    for text in ("demo", "Demo line", "Example (2024), not a paper, Sec. 0, Fig. 0",
                 "smoke: 2 point(s) x 2 seed(s)", "paper: 2 point(s) x 2 seed(s), gpu"):
        assert text in out, text


def test_run_exit_codes_and_report(claims_dir: Path, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    write_claim(claims_dir, "good")
    write_claim(claims_dir, "bad", body=SLOPE_BAD)
    args = ("--claims-dir", str(claims_dir), "--device", "cpu")
    code, out = cli(capsys, "claims", "run", "good", *args, "--out", str(tmp_path / "r1"))
    assert code == 0 and "PASS  good[slope=1.0]" in out
    assert "2 claim items (0 controls): 2 pass" in out
    code, out = cli(capsys, "claims", "run", *args, "--out", str(tmp_path / "r2"))
    assert code == 1 and "FAIL  bad[slope=2.0]" in out and "[FAIL] slope is 10" in out
    report = json.loads((tmp_path / "r2" / "report.json").read_text())
    assert [c["id"] for c in report["claims"]] == ["bad", "good"]
    assert report["summary"]["fail"] == 2 and report["summary"]["pass"] == 2


def test_run_default_out_dir_next_to_claims(claims_dir: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    write_claim(claims_dir, "good")
    code, _ = cli(capsys, "claims", "run", "--claims-dir", str(claims_dir), "--device", "cpu")
    results = claims_dir.parent / "results" / "claims"
    [run_dir] = [p for p in results.iterdir() if p.name != "latest"]
    assert code == 0 and (run_dir / "report.md").exists()
    assert (results / "latest").resolve() == run_dir.resolve()


def test_usage_and_validation_errors_exit_2(claims_dir: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    write_claim(claims_dir, "good")
    code, out = cli(capsys, "claims", "run", "nope", "--claims-dir", str(claims_dir))
    assert code == 2 and "unknown claim id(s) nope; known: good" in out
    assert cli(capsys, "claims", "run", "--profile", "huge")[0] == 2
    assert cli(capsys, "claims", "frobnicate")[0] == 2
    assert cli(capsys, "claims")[0] == 2
    assert cli(capsys)[0] == 2
    assert cli(capsys, "claims", "list", "--claims-dir", str(tmp_path / "missing"))[0] == 2
    write_claim(claims_dir, "broken", sections="[grid]\nslope = []\n")
    code, out = cli(capsys, "claims", "run", "--claims-dir", str(claims_dir))
    assert code == 2 and "broken.toml: grid.slope: bad grid" in out
    assert "cannot run invalid claim(s) broken" in out


def test_empty_claims_dir_runs_nothing(claims_dir: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    code, out = cli(capsys, "claims", "run", "--claims-dir", str(claims_dir))
    assert code == 0 and "nothing to verify" in out


def test_report_rerenders_markdown(claims_dir: Path, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    write_claim(claims_dir, "bad", body=SLOPE_BAD)
    out_dir = tmp_path / "run"
    assert cli(capsys, "claims", "run", "--claims-dir", str(claims_dir), "--device", "cpu",
               "--out", str(out_dir))[0] == 1
    md = (out_dir / "report.md").read_text()
    (out_dir / "report.md").unlink()
    code, out = cli(capsys, "claims", "report", str(out_dir))
    assert code == 0 and (out_dir / "report.md").read_text() == md
    assert "bad" in out and "FAIL" in out and "slope is 10" in out
    assert cli(capsys, "claims", "report", str(tmp_path / "nowhere"))[0] == 2


def test_list_shows_controls(claims_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_controlled(claims_dir, "ctl", controls=CONTROL_FALLING + CONTROL_STEEPER)
    write_claim(claims_dir, "plain", no_control="an exact identity")
    code, out = cli(capsys, "claims", "list", "--claims-dir", str(claims_dir))
    assert code == 0 and "controls" in out and "2: falling, steeper" in out
    assert "0 (no_control: an exact identity)" in out


def test_run_with_seeds_overrides_every_item(claims_dir: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    write_controlled(claims_dir, "ctl")
    write_claim(claims_dir, "other")
    args = ("--claims-dir", str(claims_dir), "--device", "cpu", "--out", str(tmp_path / "r"))
    code, out = cli(capsys, "claims", "run", "ctl", "--seeds", "3", "4", "--profile", "smoke",
                    *args)
    assert code == 0 and "PASS  ctl[control-falling-slope=-1.0]" in out
    assert out.count("seeds overridden: not the declared run (seeds [3, 4])") == 3  # banner,
    assert "4 claim items (2 controls): 4 pass" in out                        # table, summary
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["seeds_override"] == [3, 4] and [c["id"] for c in report["claims"]] == ["ctl"]
    assert all(i["seeds"] == i["seeds_override"] == [3, 4] and i["declared_seeds"] == [0, 1]
               for i in report["items"])
    code, out = cli(capsys, "claims", "report", str(tmp_path / "r"))
    assert code == 0 and "seeds overridden: not the declared run" in out
    code, out = cli(capsys, "claims", "run", "ctl", "--seeds", "1", "1", *args)
    assert code == 2 and "seeds must be distinct non-negative integers" in out


def test_failing_control_fails_the_run(claims_dir: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    write_controlled(claims_dir, "ctl", controls=CONTROL_STEEPER)
    code, out = cli(capsys, "claims", "run", "--claims-dir", str(claims_dir), "--device", "cpu",
                    "--out", str(tmp_path / "r"))
    assert code == 1 and "FAIL  ctl[control-steeper-slope=3.0]" in out
    assert "[HELD, predicted fail] slope positive" in out
