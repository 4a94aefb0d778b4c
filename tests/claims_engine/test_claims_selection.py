"""``claims run -k / -m`` select as ``pytest claims -k / -m`` do; the paper items that fit
a CPU (``-m "not gpu"``) and the warning for GPU-scale items on a CPU."""
from __future__ import annotations

from pathlib import Path

import pytest

from claims_engine_helpers import CONTROL_FALLING, run_pytest, write_claim, write_controlled
from hessbench.claims.options import paper_on_cpu_warning
from hessbench.claims.select import Selection
from hessbench.cli import main

pytest_plugins = ["pytester"]

#: a paper profile at GPU scale (the default) and one that says it fits a CPU
GPU_PAPER = '[params]\nnoise = 0.01\n\n[grid]\nslope = [1.0, 2.0]\n'
CPU_PAPER = GPU_PAPER + '\n[profiles.paper]\ngpu = false\n'


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def ran(out: str) -> list[str]:
    """The item ids of a ``claims run``'s per-item progress lines."""
    return sorted(line.split()[1] for line in out.splitlines()
                  if line.startswith("PASS ") and "[" in line)


def three_claims(claims: Path) -> None:
    write_claim(claims, "sagun-demo", sections=GPU_PAPER)
    write_claim(claims, "wei-demo", sections=CPU_PAPER)
    write_controlled(claims, "zhu-demo", controls=CONTROL_FALLING)


def test_k_selects_like_pytest(claims_dir: Path, tmp_path: Path, pytester: pytest.Pytester,
                               capsys: pytest.CaptureFixture[str]) -> None:
    three_claims(claims_dir)
    three_claims(pytester.path / "claims")
    for expr in ("sagun or zhu and not control", "control", "2.0 and not wei",
                 "EXAMPLE_LINE and demo.toml"):
        code, out = cli(capsys, "claims", "run", "--claims-dir", str(claims_dir), "--device",
                        "cpu", "-k", expr, "--out", str(tmp_path / expr.replace(" ", "_")))
        assert code == 0, out
        res = run_pytest(pytester, "claims", "--device", "cpu", "--collect-only", "-q",
                         "-k", expr)
        collected = sorted(line.split("::")[1] for line in res.stdout.lines
                           if "::" in line)
        assert ran(out) == collected and collected, expr


def test_m_not_gpu_keeps_the_paper_items_that_fit_a_cpu(claims_dir: Path, tmp_path: Path,
                                                        pytester: pytest.Pytester,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    three_claims(claims_dir)
    args = ("claims", "run", "--claims-dir", str(claims_dir), "--device", "cpu",
            "--profile", "paper")
    code, out = cli(capsys, *args, "-m", "not gpu", "--out", str(tmp_path / "a"))
    assert code == 0 and ran(out) == ["wei-demo[slope=1.0]", "wei-demo[slope=2.0]"]
    assert "marked gpu" not in out
    code, out = cli(capsys, *args, "-k", "sagun", "--out", str(tmp_path / "b"))
    assert code == 0 and ("warning: the paper profile on a CPU: 2 selected items marked gpu"
                          in out)

    three_claims(pytester.path / "claims")
    res = run_pytest(pytester, "claims", "--device", "cpu", "--profile", "paper", "-k", "zhu")
    res.assert_outcomes(passed=4)
    res.stdout.fnmatch_lines(["hessbench: warning: the paper profile on a CPU: 4 selected "
                              "items marked gpu*-m 'not gpu'*"])
    res = run_pytest(pytester, "claims", "--device", "cpu", "--profile", "paper",
                     "-m", "not gpu")
    res.assert_outcomes(passed=2)
    assert "marked gpu" not in res.stdout.str()


def test_bad_or_empty_selection_is_a_usage_error(claims_dir: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    write_claim(claims_dir, "demo")
    args = ("claims", "run", "--claims-dir", str(claims_dir), "--device", "cpu")
    code, out = cli(capsys, *args, "-k", "demo and (")
    assert code == 2 and "error: -k 'demo and (': " in out and "as for pytest" in out
    code, out = cli(capsys, *args, "-k", "nothing-like-it")
    assert code == 2 and "-k 'nothing-like-it' selects none of the items of demo" in out


def test_selection_unit() -> None:
    sel = Selection("sagun and not control", "not gpu")
    assert sel.matches({"sagun-outliers[k=2]"}, {"claim"})
    assert not sel.matches({"sagun-outliers[k=2]"}, {"claim", "gpu"})
    assert not sel.matches({"sagun-outliers[control-tanh]"}, {"claim"})
    assert Selection().matches(set(), set())
    assert Selection().describe() == "" and sel.describe() == \
        "-k 'sagun and not control' -m 'not gpu'"
    assert paper_on_cpu_warning("paper", "cuda", 3) is None
    assert paper_on_cpu_warning("paper", "cpu", 0) is None
    assert "1 selected item marked gpu" in paper_on_cpu_warning("paper", "cpu", 1)
