"""Command-line conventions: --version, "did you mean", the latest run, one usage error
for a bad --device, a listing that survives an invalid file, ``hessbench experiments``."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from claims_engine_helpers import run_pytest, write_claim
from hessbench.cli import main

pytest_plugins = ["pytester"]
no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    code, out = cli(capsys, "--version")
    assert code == 0 and out.strip() == f"hessbench {version('hessbench')}"


def test_misspelt_claim_id_gets_did_you_mean(claims_dir: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    write_claim(claims_dir, "demo-line")
    code, out = cli(capsys, "claims", "run", "demo-lien", "--claims-dir", str(claims_dir))
    assert code == 2 and "unknown claim id(s) demo-lien; known: demo-line; did you mean " \
        "demo-line?" in out


def test_report_without_dir_shows_the_latest_run(claims_dir: Path,
                                                 capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    write_claim(claims_dir, "demo")
    results = claims_dir.parent / "results" / "claims"
    args = ("claims", "run", "--claims-dir", str(claims_dir), "--device", "cpu")
    assert cli(capsys, *args)[0] == 0
    first = (results / "latest").resolve()
    assert cli(capsys, *args)[0] == 0
    second = (results / "latest").resolve()
    assert second != first and (second / "report.json").exists()
    monkeypatch.chdir(claims_dir.parent)
    code, out = cli(capsys, "claims", "report")
    assert code == 0 and f"latest run: {second}" in out and "slope=1.0" in out
    assert cli(capsys, "claims", "report", "latest")[1] == out
    code, out = cli(capsys, "claims", "report", "--results-dir", "nowhere")
    assert code == 2 and "no run in nowhere" in out


def test_latest_text_file_where_symlinks_fail(claims_dir: Path,
                                              capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object, **_kw: object) -> None:
        raise OSError("symlinks not supported here")

    monkeypatch.setattr(Path, "symlink_to", refuse)
    write_claim(claims_dir, "demo")
    assert cli(capsys, "claims", "run", "--claims-dir", str(claims_dir), "--device", "cpu")[0] == 0
    results = claims_dir.parent / "results" / "claims"
    [run] = [p for p in results.iterdir() if p.is_dir()]
    assert (results / "LATEST").read_text().strip() == run.name
    assert not (results / "latest").exists()
    code, out = cli(capsys, "claims", "report", "--results-dir", str(results))
    assert code == 0 and f"latest run: {run}" in out


def test_run_out_of_results_claims_gets_no_latest(claims_dir: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    write_claim(claims_dir, "demo")
    assert cli(capsys, "claims", "run", "--claims-dir", str(claims_dir), "--device", "cpu",
               "--out", str(tmp_path / "mine"))[0] == 0
    assert not (tmp_path / "results").exists()


@no_gpu
def test_cuda_without_gpu_is_one_usage_error_in_the_cli(claims_dir: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    write_claim(claims_dir, "a")
    write_claim(claims_dir, "b")
    code, out = cli(capsys, "claims", "run", "--claims-dir", str(claims_dir), "--device", "cuda")
    assert code == 2 and out.count("error") == 1 and "--device cuda: no CUDA device" in out
    assert cli(capsys, "claims", "run", "--device", "tpu")[0] == 2


@no_gpu
def test_cuda_without_gpu_is_one_usage_error_in_pytest(pytester: pytest.Pytester) -> None:
    write_claim(pytester.path / "claims", "a")
    write_claim(pytester.path / "claims", "b")
    res = run_pytest(pytester, "claims", "--device", "cuda")
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    assert res.stderr.str().count("--device cuda: no CUDA device") == 1


def test_list_shows_valid_claims_beside_an_invalid_one(claims_dir: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    write_claim(claims_dir, "good")
    write_claim(claims_dir, "broken", experiment="no_such_experiment")
    code, out = cli(capsys, "claims", "list", "--claims-dir", str(claims_dir))
    assert code == 2 and "good" in out and "Demo line" in out
    assert "broken.toml: experiment: unknown experiment 'no_such_experiment'" in out
    assert "1 claim file(s) could not be loaded (above): broken" in out


def test_run_selected_claims_beside_an_invalid_one(claims_dir: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    write_claim(claims_dir, "good")
    write_claim(claims_dir, "broken", experiment="no_such_experiment")
    code, out = cli(capsys, "claims", "run", "good", "--claims-dir", str(claims_dir),
                    "--device", "cpu", "--out", str(tmp_path / "r"))
    assert code == 0 and "warning: not selected, invalid: broken" in out and "PASS  good" in out
    code, out = cli(capsys, "claims", "run", "broken", "--claims-dir", str(claims_dir))
    assert code == 2 and "cannot run invalid claim(s) broken" in out


def test_unknown_param_is_a_load_error_naming_the_key(claims_dir: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    write_claim(claims_dir, "typo", sections="[params]\nnoize = 0.01\n")
    code, out = cli(capsys, "claims", "list", "--claims-dir", str(claims_dir))
    assert code == 2
    assert ("typo.toml: params: unknown param(s) ['noize'] for experiment 'example_line' "
            "(profile 'smoke'); its params: [") in out
    assert "did you mean 'noize' -> 'noise'?" in out


def test_experiments_list_and_show(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = cli(capsys, "experiments", "list")
    assert code == 0 and "example_line" in out and "n_points = 11" in out
    assert "slope_hat" in out and "sagun_outliers" in out
    code, out = cli(capsys, "experiments", "show", "example_line")
    assert code == 0 and "hessbench/experiments/example_line.py" in out
    assert "    trials = 100" in out and "metrics: hits_a, hits_b" in out
    code, out = cli(capsys, "experiments", "show", "example_lin")
    assert code == 2 and "did you mean example_line?" in out
    assert cli(capsys, "experiments")[0] == 2

