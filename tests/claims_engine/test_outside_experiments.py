"""Experiments from outside the package (``--experiments``, ``-p``, entry points), found
by pytest and by the command line alike."""
from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from claims_engine_helpers import run_pytest, write_claim
from hessbench.cli import main
from hessbench.experiments import external
from hessbench.experiments.registry import REGISTRY

pytest_plugins = ["pytester"]

MODULE = "outside_exp"
SOURCE = '''"""A user's experiment module, outside hessbench."""
from hessbench.experiments.registry import Measurement, experiment


@experiment("outside_const", metrics=["value"], defaults={"value": 1.0})
def outside_const(p, seed, device):
    """A constant, from outside the package."""
    return Measurement(metrics={"value": p["value"]})
'''
BODY = '''
[[expectations]]
name = "value is one"
metric = "value"
relation = "equals"
value = 1.0
abs_tol = 1e-12
reason = "the constant is 1"
'''


def forget() -> None:
    """Unregister the outside experiment and drop its module."""
    REGISTRY.pop("outside_const", None)
    sys.modules.pop(MODULE, None)


@pytest.fixture
def outside(tmp_path: Path) -> Iterator[Path]:
    """``tmp/outside_exp.py`` and ``tmp/claims/uses-outside.toml``; unregistered before
    and after."""
    forget()
    (tmp_path / f"{MODULE}.py").write_text(SOURCE)
    write_claim(tmp_path / "claims", "uses-outside", body=BODY, sections="",
                experiment="outside_const")
    yield tmp_path
    forget()


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.mark.parametrize("how", [["-p", MODULE], ["--experiments", MODULE]])
def test_pytest_finds_the_outside_experiment(pytester: pytest.Pytester, how: list[str]) -> None:
    forget()
    pytester.makepyfile(**{MODULE: SOURCE})
    pytester.syspathinsert()
    write_claim(pytester.path / "claims", "uses-outside", body=BODY, sections="",
                experiment="outside_const")
    try:
        res = run_pytest(pytester, *how, "claims", "--device", "cpu", "--claims-out", "out")
        res.assert_outcomes(passed=1)
        report = json.loads((pytester.path / "out" / "report.json").read_text())
        assert report["items"][0]["records"][0]["metrics"] == {"value": 1.0}
    finally:
        forget()


def test_pytest_without_the_module_is_a_collection_error(pytester: pytest.Pytester) -> None:
    forget()
    write_claim(pytester.path / "claims", "uses-outside", body=BODY, sections="",
                experiment="outside_const")
    res = run_pytest(pytester, "claims", "--device", "cpu")
    res.assert_outcomes(errors=1)
    res.stdout.fnmatch_lines(["*unknown experiment 'outside_const'*--experiments MODULE*"])


def test_pytest_bad_experiments_module_is_one_usage_error(pytester: pytest.Pytester) -> None:
    res = run_pytest(pytester, "--experiments", "no_such_module_19", "claims")
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    res.stderr.fnmatch_lines(["*--experiments no_such_module_19: no module named*"])


def test_cli_finds_the_outside_experiment(outside: Path, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    claims = str(outside / "claims")
    code, out = cli(capsys, "claims", "list", "--claims-dir", claims)
    assert code == 2 and "unknown experiment 'outside_const'" in out
    monkeypatch.chdir(outside)  # a dotted name is found from the current directory
    code, out = cli(capsys, "claims", "list", "--claims-dir", claims, "--experiments", MODULE)
    assert code == 0 and "uses-outside" in out
    forget()
    code, out = cli(capsys, "claims", "run", "--claims-dir", claims, "--device", "cpu",
                    "--experiments", str(outside / f"{MODULE}.py"), "--out", "r")
    assert code == 0 and "PASS  uses-outside" in out
    code, out = cli(capsys, "experiments", "show", "outside_const")
    assert code == 0 and "value = 1.0" in out and "A constant, from outside" in out


def test_cli_bad_experiments_module_exits_2(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "broken_19.py").write_text("raise RuntimeError('oops')\n")
    code, out = cli(capsys, "experiments", "list", "--experiments", str(tmp_path / "broken_19.py"))
    assert code == 2 and "importing it failed: RuntimeError: oops" in out
    code, out = cli(capsys, "claims", "list", "--experiments", str(tmp_path / "nope.py"))
    assert code == 2 and "no such file" in out


def test_entry_points_are_loaded_once_and_a_broken_one_warns(
        outside: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(outside))
    points = [EntryPoint("mine", MODULE, external.ENTRY_POINT_GROUP),
              EntryPoint("broken", "no_such_module_19", external.ENTRY_POINT_GROUP)]
    monkeypatch.setattr(external, "entry_points",
                        lambda group: [p for p in points if p.group == group])
    with pytest.warns(RuntimeWarning, match="entry point broken = 'no_such_module_19'"):
        assert external.load_entry_points(force=True) == ["mine"]
    assert "outside_const" in REGISTRY
    assert external.load_entry_points() == []  # once per process
