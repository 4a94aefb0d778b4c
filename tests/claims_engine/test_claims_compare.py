"""``hessbench claims compare RUN_A RUN_B``: statuses, verdicts, new and removed items and
the metrics that moved between two runs; ``latest`` for either."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from claims_engine_helpers import SLOPE_BAD, write_claim
from hessbench.claims.compare import compare_reports
from hessbench.claims.report import load_report
from hessbench.cli import main

NOISE = '[params]\nnoise = {noise}\n\n[grid]\nslope = {slopes}\n'


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_compare_two_runs(claims_dir: Path, capsys: pytest.CaptureFixture[str],
                          monkeypatch: pytest.MonkeyPatch) -> None:
    run = ("claims", "run", "--claims-dir", str(claims_dir), "--device", "cpu")
    write_claim(claims_dir, "demo", sections=NOISE.format(noise=0.01, slopes="[1.0, 2.0]"))
    write_claim(claims_dir, "bad", body=SLOPE_BAD, sections=NOISE.format(noise=0.01,
                                                                          slopes="[1.0]"))
    assert cli(capsys, *run)[0] == 1
    results = claims_dir.parent / "results" / "claims"
    first = (results / "latest").resolve()
    # run 2: more noise (slope=1.0 fails its tolerance), slope 2 -> 3, bad becomes known
    write_claim(claims_dir, "demo", sections=NOISE.format(noise=1.0, slopes="[1.0, 3.0]"))
    write_claim(claims_dir, "bad", body=SLOPE_BAD, sections=NOISE.format(
        noise=0.01, slopes="[1.0]") + '\n[profiles.smoke]\nknown_failure = "for the test"\n')
    assert cli(capsys, *run)[0] == 1
    second = (results / "latest").resolve()
    assert second != first

    monkeypatch.chdir(claims_dir.parent)
    code, out = cli(capsys, "claims", "compare", str(first), "latest")
    assert code == 0, out
    lines = out.splitlines()
    assert f"latest run: {second}" in lines and f"{first} -> {second}" in lines
    assert "status changed (2):" in lines
    assert "  bad[slope=1.0]: FAIL -> KNOWN FAILURE" in lines
    assert "  demo[slope=1.0]: PASS -> FAIL" in lines
    [verdict] = [ln for ln in lines if ln.startswith("    slope recovered: PASS -> FAIL")]
    assert verdict.endswith("(measured 0.9957, 0.9855 -> 0.5707, -0.446)")
    assert "new items (1): demo[slope=3.0]" in lines and \
        "removed items (1): demo[slope=2.0]" in lines
    assert "metrics that moved (beyond rtol 1e-06) in 1 item(s):" in lines
    assert "  demo[slope=1.0]" in lines
    assert any(ln.startswith("    slope_hat (seed 0): 0.9957 -> 0.5707") for ln in lines)
    assert not any("bad[slope=1.0]" in ln and "seed" in ln for ln in lines)  # same metrics
    assert lines[-1] == "0 item(s) unchanged"

    code, out = cli(capsys, "claims", "compare", "latest", "latest")
    assert code == 0 and out.splitlines()[-1] == "no change: 3 item(s), same statuses and metrics"
    code, out = cli(capsys, "claims", "compare", str(first), "nowhere")
    assert code == 2 and "nowhere" in out
    code, out = cli(capsys, "claims", "compare", "latest", "latest", "--rtol", "-1")
    assert code == 2 and "--rtol must be a finite number >= 0, got -1.0" in out


def test_metrics_move_beyond_rtol_only(claims_dir: Path) -> None:
    from hessbench.claims.runner import ClaimSession
    from hessbench.claims.spec import load_claim

    session = ClaimSession("smoke", "cpu", root=claims_dir.parent)
    claim = load_claim(write_claim(claims_dir, "demo"))
    for setup, point in session.plan(claim):
        session.run(claim, setup, point)
    old = load_report(session.write_report(claims_dir.parent / "out"))
    new = json.loads(json.dumps(old))
    metrics = new["items"][0]["records"][0]["metrics"]
    metrics["slope_hat"] *= 1 + 1e-7
    assert compare_reports(old, new)["metrics"] == []
    metrics["slope_hat"] *= 1 + 1e-3
    [moved] = compare_reports(old, new)["metrics"]
    assert moved["item"] == "demo[slope=1.0]" and [c["metric"] for c in moved["changes"]] == [
        "slope_hat"]
    assert compare_reports(old, new, rtol=1e-2)["metrics"] == []
