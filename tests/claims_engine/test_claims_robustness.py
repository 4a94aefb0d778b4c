"""Robustness of the claims engine (issue 20): mutated claim files give a ClaimSpecError and
nothing else; experiments that exit, interrupted or concurrent runs, duplicate ids, and the
inputs that already work, pinned."""
from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

from claims_engine_helpers import SLOPE_BAD, run_pytest, write_claim
from hessbench.claims.errors import ClaimSpecError
from hessbench.claims.lock import LOCK_NAME, DirectoryInUse, RunLock
from hessbench.claims.report import render_markdown
from hessbench.claims.runner import ClaimSession
from hessbench.claims.spec import load_claim
from hessbench.cli import main
from hessbench.experiments import registry
from hessbench.experiments.registry import Experiment, Measurement

# Registered from this module (pytest rejects pytest_plugins in non-top-level conftests).
pytest_plugins = ["pytester"]

REAL_CLAIMS = sorted((Path(__file__).resolve().parents[2] / "claims").glob("*.toml"))
FUZZ = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])


# ------------------------------------------------------------------ fuzzing the loader
def to_toml(data: dict[str, Any]) -> str:
    """``data`` as TOML, every value inline (enough for the fuzzer's mutated claims)."""
    return "".join(f"{json.dumps(k)} = {_inline(v)}\n" for k, v in data.items())


def _inline(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_inline(x)}" for k, x in v.items()) + " }"
    if isinstance(v, list):
        return "[ " + ", ".join(_inline(x) for x in v) + " ]"
    raise TypeError(type(v))


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key / index path into ``node``."""
    items = (node.items() if isinstance(node, dict)
             else enumerate(node) if isinstance(node, list) else ())
    out = []
    for key, child in items:
        out.append((*prefix, key))
        out += _paths(child, (*prefix, key))
    return out


ODD_VALUES = st.one_of(
    st.integers(-3, 10**20), st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
    st.sampled_from(["", " ", "../../etc/passwd", "a/b", "{slope}", "nan", "x" * 300, "\x00",
                     "é", "slope_hat", "equals", "greater_than", "smoke", "all", "mean"]),
    st.just([]), st.just({}), st.lists(st.integers(-2, 3), max_size=3),
    st.lists(st.floats(allow_nan=True), min_size=1, max_size=3),
    st.dictionaries(st.sampled_from(["value", "abs_tol", "slope", "x"]),
                    st.one_of(st.floats(allow_nan=True), st.text(max_size=3)), max_size=2))


@st.composite
def mutated_claim(draw: st.DrawFn) -> tuple[str, bytes]:
    """A real claim file's name and a mutation of its bytes: keys deleted, values of other
    types (NaN among them) and unknown keys, then maybe truncated or with bytes flipped."""
    path = draw(st.sampled_from(REAL_CLAIMS))
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):  # a claim being edited right now
        data = {}
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(data)
        where = draw(st.sampled_from(paths)) if paths else ()
        parent = data
        for key in where[:-1]:
            parent = parent[key]
        op = draw(st.sampled_from(["delete", "replace", "add"]))
        if not where or op == "add":
            target = parent if isinstance(parent, dict) else data
            target[draw(st.sampled_from(["extra", "gpu", "seeds", "rel_tol"]))] = draw(ODD_VALUES)
        elif op == "delete":
            del parent[where[-1]]
        else:
            parent[where[-1]] = draw(ODD_VALUES)
    text = to_toml(data).encode()
    tail = draw(st.sampled_from(["keep"] * 4 + ["truncate", "flip"]))
    if tail == "truncate":
        text = text[:draw(st.integers(0, len(text)))]
    elif tail == "flip":
        buf = bytearray(text)
        for _ in range(draw(st.integers(1, 4))):
            buf[draw(st.integers(0, len(buf) - 1))] = draw(st.integers(0, 255))
        text = bytes(buf)
    return path.name, text


@pytest.mark.skipif(not REAL_CLAIMS, reason="no claims/*.toml to mutate")
@FUZZ
@given(case=mutated_claim())
def test_mutated_real_claims_give_claim_spec_errors_only(case: tuple[str, bytes]) -> None:
    name, text = case
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "claims" / name
        path.parent.mkdir()
        path.write_bytes(text)
        try:
            load_claim(path)
        except ClaimSpecError as exc:
            assert str(path) in str(exc)


@FUZZ
@given(data=st.binary(max_size=200))
def test_random_bytes_give_claim_spec_errors_only(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "claims" / "demo.toml"
        path.parent.mkdir()
        path.write_bytes(data)
        with pytest.raises(ClaimSpecError):
            load_claim(path)


# ------------------------------------------------------------------ helpers
class Unusual(BaseException):
    """A BaseException that is neither Exception nor KeyboardInterrupt."""


def stops_at_slope_2(monkeypatch: pytest.MonkeyPatch, stop: Callable[[], None]) -> str:
    """Register experiment ``stops``: ``example_line``, but ``stop()`` at slope 2.0."""
    line = registry.REGISTRY["example_line"]

    def stops(params: dict, seed: int, device: torch.device) -> Measurement:
        if params["slope"] == 2.0:
            stop()
        return line(params, seed, device)

    monkeypatch.setitem(registry.REGISTRY, "stops", Experiment("stops", stops))
    return "stops"


def raiser(exc: BaseException) -> Callable[[], None]:
    def stop() -> None:
        raise exc
    return stop


def signaller(signum: int) -> Callable[[], None]:
    return lambda: os.kill(os.getpid(), signum)


def cli_run(capsys: pytest.CaptureFixture[str], claims_dir: Path, *argv: str) -> tuple[int, str]:
    code = main(["claims", "run", "--claims-dir", str(claims_dir), "--device", "cpu", *argv])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def report_items(out: Path) -> list[tuple[str, str]]:
    return [(i["item"], i["status"])
            for i in json.loads((out / "report.json").read_text())["items"]]


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# --------------------------------------------------- experiments that exit or interrupt
@pytest.mark.parametrize("exc", [SystemExit(3), Unusual("odd")], ids=["SystemExit", "Base"])
def test_cli_keeps_other_items_when_an_experiment_exits(
        claims_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch, exc: BaseException) -> None:
    write_claim(claims_dir, "demo", experiment=stops_at_slope_2(monkeypatch, raiser(exc)))
    code, out = cli_run(capsys, claims_dir, "--out", str(tmp_path / "r"))
    assert code == 1 and "ERROR demo[slope=2.0]" in out
    assert report_items(tmp_path / "r") == [("demo[slope=1.0]", "pass"),
                                             ("demo[slope=2.0]", "error")]
    error = json.loads((tmp_path / "r" / "report.json").read_text())["items"][1]["error"]
    assert type(exc).__name__ in error


def test_plugin_reports_an_experiment_that_exits_as_an_error_item(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    write_claim(pytester.path / "claims", "demo",
                experiment=stops_at_slope_2(monkeypatch, raiser(SystemExit(3))))
    res = run_pytest(pytester, "claims", "--device", "cpu", "--claims-out", "out")
    res.assert_outcomes(passed=1, errors=1)
    assert report_items(pytester.path / "out") == [("demo[slope=1.0]", "pass"),
                                                   ("demo[slope=2.0]", "error")]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_cli_signal_mid_run_saves_finished_items(
        claims_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch, signum: int) -> None:
    before = signal.getsignal(signal.SIGTERM)
    write_claim(claims_dir, "demo", experiment=stops_at_slope_2(monkeypatch, signaller(signum)))
    code, _ = cli_run(capsys, claims_dir, "--out", str(tmp_path / "r"))
    assert code == 130 and signal.getsignal(signal.SIGTERM) is before
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["interrupted"] is True
    assert report_items(tmp_path / "r") == [("demo[slope=1.0]", "pass")]


def test_plugin_sigterm_mid_run_saves_finished_items(pytester: pytest.Pytester,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    write_claim(pytester.path / "claims", "demo",
                experiment=stops_at_slope_2(monkeypatch, signaller(signal.SIGTERM)))
    res = run_pytest(pytester, "claims", "--device", "cpu", "--claims-out", "out",
                     no_reraise_ctrlc=True)
    assert res.ret == pytest.ExitCode.INTERRUPTED
    assert report_items(pytester.path / "out") == [("demo[slope=1.0]", "pass")]


# ------------------------------------------------------- never overwrite a report with less
def test_interrupt_before_the_first_item_keeps_the_earlier_report(
        claims_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "r"
    write_claim(claims_dir, "demo")
    assert cli_run(capsys, claims_dir, "--out", str(out))[0] == 0
    earlier = (out / "report.json").read_bytes()
    line = registry.REGISTRY["example_line"]
    monkeypatch.setitem(registry.REGISTRY, "example_line", Experiment(
        "example_line", lambda p, s, d: signaller(signal.SIGINT)(), figure=line.figure))
    code, text = cli_run(capsys, claims_dir, "--out", str(out))
    assert code == 130 and "no report written (the report in" in text
    assert (out / "report.json").read_bytes() == earlier
    assert sorted(p.name for p in tmp_path.iterdir()) == ["claims", "r"]


def test_a_report_with_fewer_items_goes_beside_the_earlier_one(
        claims_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r"
    write_claim(claims_dir, "good")
    write_claim(claims_dir, "bad", body=SLOPE_BAD)
    assert cli_run(capsys, claims_dir, "--out", str(out))[0] == 1
    earlier = (out / "report.json").read_bytes()
    code, text = cli_run(capsys, claims_dir, "good", "--out", str(out))
    assert code == 0 and "kept the report in" in text
    assert (out / "report.json").read_bytes() == earlier
    [beside] = [p for p in tmp_path.iterdir() if p.name.startswith("r-")]
    assert [i for i, _ in report_items(beside)] == ["good[slope=1.0]", "good[slope=2.0]"]
    assert f"report: {beside / 'report.md'}" in " ".join(text.split())
    # a run holding every earlier item replaces the report in place
    assert cli_run(capsys, claims_dir, "--out", str(out))[0] == 1
    assert len([p for p in tmp_path.iterdir() if p.name.startswith("r-")]) == 1


def test_plugin_puts_a_report_with_fewer_items_beside_the_earlier_one(
        pytester: pytest.Pytester) -> None:
    write_claim(pytester.path / "claims", "good")
    write_claim(pytester.path / "claims", "bad", body=SLOPE_BAD)
    run_pytest(pytester, "claims", "--device", "cpu", "--claims-out", "out")
    earlier = (pytester.path / "out" / "report.json").read_bytes()
    res = run_pytest(pytester, "claims", "-k", "good", "--device", "cpu", "--claims-out", "out")
    res.assert_outcomes(passed=2)
    res.stdout.fnmatch_lines(["kept the report in out, which holds items this run lacks; *",
                              "report: *out-*report.md"])
    assert (pytester.path / "out" / "report.json").read_bytes() == earlier


def test_an_unreadable_earlier_report_is_kept(claims_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "report.json").write_text("{not json")
    session = ClaimSession("smoke", "cpu", root=tmp_path)
    claim = load_claim(write_claim(claims_dir, "demo"))
    for setup, point in session.plan(claim):
        session.run(claim, setup, point)
    written = session.write_report(tmp_path / "r")
    assert written != tmp_path / "r" and (tmp_path / "r" / "report.json").read_text() == "{not json"
    assert (written / "report.json").exists()


# ------------------------------------------------------------- one run per report directory
def test_cli_refuses_a_report_directory_in_use(claims_dir: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    write_claim(claims_dir, "demo")
    with RunLock(tmp_path / "r") as lock:  # another live run (this process) holds it
        code, text = cli_run(capsys, claims_dir, "--out", str(tmp_path / "r"))
        assert code == 2 and lock.path.exists()
    text = " ".join(text.split())
    assert f"report directory {tmp_path / 'r'} is in use by another hessbench run " \
        f"(pid {os.getpid()}" in text and "choose another report directory" in text
    assert not (tmp_path / "r").exists()  # nothing was written, the lock cleaned up


def test_plugin_refuses_a_claims_out_in_use(pytester: pytest.Pytester) -> None:
    write_claim(pytester.path / "claims", "demo")
    with RunLock(pytester.path / "out"):
        res = run_pytest(pytester, "claims", "--device", "cpu", "--claims-out", "out")
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    res.stderr.fnmatch_lines(["*report directory*out is in use by another hessbench run*"])
    assert not (pytester.path / "out" / "report.json").exists()


def test_a_stale_lock_is_taken_over_with_a_warning(claims_dir: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    write_claim(claims_dir, "demo")
    (tmp_path / "r").mkdir()
    pid = dead_pid()
    (tmp_path / "r" / LOCK_NAME).write_text(f"{pid}\n")
    code, text = cli_run(capsys, claims_dir, "--out", str(tmp_path / "r"))
    assert code == 0 and "took over the stale lock" in text and f"of pid {pid}" in text
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["demo.png", "report.json",
                                                                  "report.md"]


def test_plugin_takes_over_a_stale_lock_with_a_warning(pytester: pytest.Pytester) -> None:
    write_claim(pytester.path / "claims", "demo")
    (pytester.path / "out").mkdir()
    (pytester.path / "out" / LOCK_NAME).write_text(f"{dead_pid()}\n")
    res = run_pytest(pytester, "claims", "--device", "cpu", "--claims-out", "out")
    res.assert_outcomes(passed=2)
    res.stdout.fnmatch_lines(["hessbench: warning: took over the stale lock *"])
    assert not (pytester.path / "out" / LOCK_NAME).exists()


def test_run_lock_is_exclusive_and_released(tmp_path: Path) -> None:
    with RunLock(tmp_path) as lock:
        assert lock.path.read_text().strip() == str(os.getpid()) and lock.note is None
        with pytest.raises(DirectoryInUse, match=f"pid {os.getpid()}"):
            RunLock(tmp_path).acquire()
    assert not lock.path.exists()
    lock.path.write_text("garbage")
    with RunLock(tmp_path) as taken:
        assert "unreadable lock" in taken.note


# ------------------------------------------------------------------- duplicate claim ids
def test_session_rejects_a_duplicate_claim_id_naming_both_files(tmp_path: Path) -> None:
    first = write_claim(tmp_path / "a" / "claims", "demo")
    second = write_claim(tmp_path / "b" / "claims", "demo")
    session = ClaimSession("smoke", "cpu", root=tmp_path)
    session.plan(load_claim(first))
    session.plan(load_claim(first))  # the same file again is no duplicate
    with pytest.raises(ClaimSpecError) as info:
        session.plan(load_claim(second))
    assert str(info.value) == (f"{second}: id: duplicate claim id 'demo', also declared in "
                               f"{first}; claim ids must be unique within a run")


def test_plugin_rejects_a_duplicate_claim_id_across_folders(pytester: pytest.Pytester) -> None:
    write_claim(pytester.path / "a" / "claims", "demo")
    write_claim(pytester.path / "b" / "claims", "demo")
    res = run_pytest(pytester, "a/claims", "b/claims", "--device", "cpu", "--claims-out", "out")
    assert res.ret == pytest.ExitCode.INTERRUPTED
    res.stdout.fnmatch_lines(["*b/claims/demo.toml: id: duplicate claim id 'demo', also "
                              "declared in *a/claims/demo.toml*"])
    assert not (pytester.path / "out").exists()


# ------------------------------------------------------------------------- thread counts
def test_report_records_thread_counts(claims_dir: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    write_claim(claims_dir, "demo")
    assert cli_run(capsys, claims_dir, "--out", str(tmp_path / "r"))[0] == 0
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    env = report["environment"]
    assert env["torch_threads"] == torch.get_num_threads()
    assert env["thread_env"] == {"OMP_NUM_THREADS": "3", "MKL_NUM_THREADS": None}
    line = (f"- threads: torch {torch.get_num_threads()}, OMP_NUM_THREADS=3, MKL_NUM_THREADS "
            "unset (results near a threshold can depend on the BLAS thread count)")
    assert line in (tmp_path / "r" / "report.md").read_text().splitlines()
    del env["thread_env"]  # a report written before thread_env still renders
    assert "OMP_NUM_THREADS unset" in render_markdown(report)


# ------------------------------------------------------------- what already works, pinned
WORKS = [
    ("malformed TOML", lambda t: t + "\n[[expectations]\n", "(file)", "not valid TOML"),
    ("not UTF-8", lambda t: t.replace("Demo line", "Demo \udcff line"), "(file)",
     "not UTF-8 text"),
    ("unknown key", lambda t: "owner = 1\n" + t, "owner", "unknown top-level key"),
    ("wrong type", lambda t: t.replace("seeds = [0, 1]", 'seeds = "0, 1"'), "seeds",
     "must be a non-empty list"),
    ("NaN tolerance", lambda t: t.replace("abs_tol = 0.05", "abs_tol = nan"),
     "expectations[0].abs_tol", "must be finite"),
    ("inf tolerance", lambda t: t.replace("abs_tol = 0.05", "abs_tol = inf"),
     "expectations[0].abs_tol", "must be finite"),
    ("NaN value", lambda t: t.replace('value = "{slope}"', "value = nan"),
     "expectations[0].value", "must be finite"),
    ("path-like id", lambda t: t.replace('id = "demo"', 'id = "../demo"'), "id",
     "must equal the file name stem"),
    ("id of another file", lambda t: t.replace('id = "demo"', 'id = "claims/demo"'), "id",
     "must equal the file name stem"),
]


@pytest.mark.parametrize("change, key, words", [w[1:] for w in WORKS], ids=[w[0] for w in WORKS])
def test_bad_claim_files_give_clear_errors(claims_dir: Path, change: Callable[[str], str],
                                           key: str, words: str) -> None:
    path = write_claim(claims_dir, "demo")
    path.write_bytes(change(path.read_text()).encode("utf-8", "surrogateescape"))
    with pytest.raises(ClaimSpecError) as info:
        load_claim(path)
    assert info.value.key == key and words in str(info.value) and str(path) in str(info.value)


def test_path_like_grid_values_stay_inside_the_report_directory(
        claims_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_claim(claims_dir, "demo", sections='[params]\nnoise = 0.01\n\n'
                '[grid]\nslope = [1.0, "../../escape", "/tmp/abs"]\n')
    code, _ = cli_run(capsys, claims_dir, "--out", str(tmp_path / "r"))
    assert code == 1
    assert [s for _, s in report_items(tmp_path / "r")] == ["pass", "error", "error"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["claims", "r"]
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["demo.png", "report.json",
                                                                  "report.md"]


def test_runs_without_out_get_their_own_timestamped_directories(
        claims_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_claim(claims_dir, "demo")
    assert cli_run(capsys, claims_dir)[0] == 0
    assert cli_run(capsys, claims_dir)[0] == 0
    runs = sorted(p for p in (claims_dir.parent / "results" / "claims").iterdir()
                  if p.name != "latest")
    assert len(runs) == 2 and all((r / "report.json").exists() for r in runs)
    assert all(re.fullmatch(r"\d{8}-\d{6}(-\d+)?", r.name) for r in runs)
