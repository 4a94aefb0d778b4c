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



def test_bare_pytest_at_the_root_runs_the_tests_not_the_claims(
        pytester: pytest.Pytester) -> None:
    """The project's own [tool.pytest.ini_options] (testpaths), on a tree with both."""
    import tomllib

    root = Path(__file__).resolve().parents[2]
    ini = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert "markers" not in ini   # registered once, by the plugin
    pytester.makeini("[pytest]\ntestpaths = " + " ".join(ini["testpaths"]) + "\n")
    write_claim(pytester.path / "claims", "demo")
    (pytester.path / "tests").mkdir()
    (pytester.path / "tests" / "test_unit.py").write_text("def test_one():\n    pass\n")
    res = run_pytest(pytester, "--collect-only", "-q")
    assert "tests/test_unit.py::test_one" in res.stdout.str()
    assert "demo" not in res.stdout.str()
    run_pytest(pytester, "claims", "--collect-only", "-q").stdout.fnmatch_lines(
        ["claims/demo.toml::demo[[]slope=1.0[]]"])


def test_markers_are_registered_once(pytester: pytest.Pytester) -> None:
    res = run_pytest(pytester, "--markers")
    for marker in ("claim", "gpu", "slow"):
        assert sum(line.startswith(f"@pytest.mark.{marker}:")
                   for line in res.stdout.lines) == 1, marker
    pytester.makepyfile("import pytest\n\n\n@pytest.mark.gpu\n@pytest.mark.slow\n"
                        "def test_marked():\n    pass\n")
    run_pytest(pytester, "--strict-markers").assert_outcomes(passed=1)


@pytest.mark.parametrize("columns", [80, 200])
def test_columns_sets_the_width_of_a_log(claims_dir: Path, tmp_path: Path, columns: int,
                                         capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch,
                                         pytester: pytest.Pytester) -> None:
    """Piped output (no terminal) is COLUMNS wide: nothing wider, and the failure table
    unfolded when there is room; an item id is never broken."""
    from claims_engine_helpers import SLOPE_BAD

    monkeypatch.setenv("COLUMNS", str(columns))
    long_id = "a-claim-id-long-enough-to-need-its-own-line"
    write_claim(claims_dir, long_id, body=SLOPE_BAD)
    code, out = cli(capsys, "claims", "run", "--claims-dir", str(claims_dir), "--device",
                    "cpu", "--out", str(tmp_path / "r"))
    write_claim(pytester.path / "claims", long_id, body=SLOPE_BAD)
    res = run_pytest(pytester, "claims", "--device", "cpu", "--claims-out", "out")
    summary = res.stdout.str().split("hessbench claims (profile")[1].split("short test")[0]
    for text in (out, summary):
        lines = text.splitlines()   # a path is not broken either: the report's line aside
        assert max(len(line.rstrip()) for line in lines if "report: " not in line) <= columns
        assert f"{long_id}[slope=1.0]" in [line.strip() for line in lines]
        unfolded = [line for line in lines if "[FAIL] slope is 10: 0.9957, 0.9855" in line
                    and "10 ± 0.5 (all 2 seeds)" in line]
        assert len(unfolded) == (1 if columns == 200 else 0)


def test_run_v_shows_each_known_failure_beside_its_note(claims_dir: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    from claims_engine_helpers import SLOPE_BAD

    write_claim(claims_dir, "known", body=SLOPE_BAD, sections='[params]\nnoise = 0.01\n'
                'slope = 1.0\n\n[profiles.smoke]\nknown_failure = "misses 10, for the test"\n')
    args = ("claims", "run", "--claims-dir", str(claims_dir), "--device", "cpu")
    code, out = cli(capsys, *args, "--out", str(tmp_path / "a"))
    assert code == 0 and "  KNOWN FAILURE · " in out and "misses 10" not in out
    code, out = cli(capsys, *args, "-v", "--out", str(tmp_path / "b"))
    lines = out.splitlines()
    start = lines.index("known failures: this run beside the note")
    assert lines[start + 1:start + 4] == [
        "known", "  measured in this run: slope is 10: measured 0.9957, 0.9855; expected "
        "10 ± 0.5 (all 2 seeds)", "  note (as recorded in the claim file): misses 10, for the "
        "test"]
