"""Every relation passing and failing, over_seeds modes, validation of expectation tables."""
from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hessbench.claims.errors import ClaimSpecError, EvaluationError
from hessbench.claims.expectations import RELATIONS, evaluate, parse_expectation

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True)


def ev(table: dict[str, Any], per_seed: list[dict[str, Any]], params: dict | None = None,
       seeds: list[int] | None = None):
    exp = parse_expectation({"reason": "test", **table}, "expectations[0]", "x.toml", None)
    return evaluate(exp, seeds or list(range(len(per_seed))), per_seed, params or {})


def assert_fail(v, *fragments: str) -> None:
    assert not v.passed, v.message
    for frag in ("measured", "expected", "FAIL", *fragments):
        assert frag in v.message, (frag, v.message)


# ------------------------------------------------------------------------- relations
def test_equals_abs_tol() -> None:
    t = {"metric": "m", "relation": "equals", "value": 1.0, "abs_tol": 0.2}
    assert ev(t, [{"m": 1.15}]).passed
    v = ev(t, [{"m": 1.3}])
    assert_fail(v, "measured 1.3", "1 ± 0.2", "missed by 0.1")
    assert v.measured == "1.3" and v.expected == "1 ± 0.2"


def test_equals_rel_tol_and_placeholder() -> None:
    t = {"metric": "m", "relation": "equals", "value": "{k}", "rel_tol": 0.1}
    assert ev(t, [{"m": 10.9}], {"k": 10}).passed
    assert_fail(ev(t, [{"m": 11.5}], {"k": 10}), "10 ± 10% (± 1)", "missed by 0.5")


def test_equals_integer_tolerance() -> None:
    t = {"metric": "m", "relation": "equals", "value": "{k}", "int_tol": 1}
    assert ev(t, [{"m": 9}], {"k": 10}).passed
    assert_fail(ev(t, [{"m": 12}], {"k": 10}), "10 ± 1 (integer)", "missed by 1")
    assert_fail(ev(t, [{"m": 10.5}], {"k": 10}), "not an integer")


def test_between() -> None:
    t = {"metric": "m", "relation": "between", "low": 1, "high": 2}
    assert ev(t, [{"m": 1}]).passed and ev(t, [{"m": 2}]).passed
    assert_fail(ev(t, [{"m": 0.5}]), "outside [1, 2]", "missed by 0.5")
    assert_fail(ev(t, [{"m": 2.25}]), "missed by 0.25")
    assert not ev(t, [{"m": math.nan}]).passed


@pytest.mark.parametrize("rel, good, bad, miss", [("less_than", 0.5, 1.5, "0.5"),
                                                  ("greater_than", 1.5, 0.25, "0.75")])
def test_one_sided(rel: str, good: float, bad: float, miss: str) -> None:
    t = {"metric": "m", "relation": rel, "value": 1}
    assert ev(t, [{"m": good}]).passed
    assert_fail(ev(t, [{"m": bad}]), f"missed by {miss}")
    assert not ev(t, [{"m": 1}]).passed  # strict


def test_ordered() -> None:
    t = {"metrics": ["a", "b", "c"], "relation": "ordered", "order": "decreasing"}
    assert ev(t, [{"a": 3, "b": 2, "c": 1}]).passed
    v = ev(t, [{"a": 3, "b": 1, "c": 1.5}])
    assert_fail(v, "a > b > c", "b=1 is not > c=1.5", "missed by 0.5")
    inc = {**t, "order": "increasing"}
    assert ev(inc, [{"a": 1, "b": 2, "c": 3}]).passed
    assert not ev(inc, [{"a": 1, "b": 1, "c": 3}]).passed  # strict


def test_all_less_and_greater() -> None:
    t = {"metric": "m", "relation": "all_less_than", "value": 1}
    assert ev(t, [{"m": [0.1, 0.9, [0.5]]}]).passed
    assert_fail(ev(t, [{"m": [0.1, 1.25, 1.0]}]), "2 of 3 elements", "index 1", "missed by 0.25")
    g = {"metric": "m", "relation": "all_greater_than", "value": 0}
    assert ev(g, [{"m": [1, 2]}]).passed
    assert_fail(ev(g, [{"m": [1, -2]}]), "min -2", "missed by 2")
    assert_fail(ev(g, [{"m": []}]), "empty")


def test_linear_fit_criteria() -> None:
    x = [0.0, 1.0, 2.0, 3.0, 4.0]
    down = [4.0, 3.0, 2.0, 1.0, 0.0]  # slope -1, intercept 4, range 4
    t = {"x": "x", "y": "y", "relation": "linear_fit", "slope": "negative", "min_r2": 0.9}
    v = ev(t, [{"x": x, "y": down}])
    assert v.passed and "slope -1" in v.measured and "R^2 1.0000" in v.measured
    assert "x in [0, 4]" in v.measured
    assert_fail(ev({**t, "slope": "positive"}, [{"x": x, "y": down}]), "slope -1 is not positive")
    noisy = [0.0, 3.0, 0.0, 3.0, 0.5]
    assert_fail(ev(t, [{"x": x, "y": noisy}]), "R^2", "< 0.9")
    icpt = {"x": "x", "y": "y", "relation": "linear_fit", "max_intercept_frac": 0.5}
    # |intercept| 4 > 0.5 x range(y) = 2, missed by 2
    assert_fail(ev(icpt, [{"x": x, "y": down}]), "|intercept| 4 > 0.5 x range(y) = 2",
                "missed by 2")
    assert ev({**icpt, "max_intercept_frac": 1.0}, [{"x": x, "y": down}]).passed
    assert_fail(ev(t, [{"x": [0, 1], "y": [0, 1]}]), "at least 3 points")


def test_confidence_bound() -> None:
    samples = [{"m": v} for v in (1.0, 1.2, 0.8, 1.1, 0.9)]  # mean 1, s = 0.158
    up = {"metric": "m", "relation": "confidence_bound", "bound": "upper", "value": 1.2}
    v = ev(up, samples)
    assert v.passed and "mean 1," in v.measured and "(n=5" in v.measured
    v = ev({**up, "value": 1.1}, samples)
    assert_fail(v, "95% upper bound of the mean < 1.1", "missed by")
    lo = {"metric": "m", "relation": "confidence_bound", "bound": "lower", "value": 0.8,
          "level": 0.9}
    assert ev(lo, samples).passed
    # an array metric's elements are the samples; a single sample fails clearly
    assert ev(up, [{"m": [1.0, 1.2, 0.8, 1.1, 0.9]}]).passed
    assert_fail(ev(up, [{"m": 1.0}]), "at least 2 samples, got 1")


def test_proportion_greater() -> None:
    t = {"a": "ha", "b": "hb", "n_a": "n", "n_b": "n", "relation": "proportion_greater",
         "alpha": 0.05}
    v = ev(t, [{"ha": 15, "hb": 8, "n": 25}, {"ha": 15, "hb": 7, "n": 25}])  # 30/50 vs 15/50
    assert v.passed and "p_a 0.6 (30/50)" in v.measured and "p_b 0.3 (15/50)" in v.measured
    assert "z 3.02" in v.measured
    v = ev({**t, "n_a": 25, "n_b": 25}, [{"ha": 14, "hb": 12, "n": 25}, {"ha": 14, "hb": 12, "n": 25}])
    assert_fail(v, "p-value", ">= alpha 0.05")
    with pytest.raises(EvaluationError, match="outside"):
        ev(t, [{"ha": 30, "hb": 1, "n": 25}])


# ------------------------------------------------------------------------ over seeds
SCALAR = {"metric": "m", "relation": "less_than", "value": 2}


def test_over_seeds_all_names_failing_seed() -> None:
    v = ev(SCALAR, [{"m": 0}, {"m": 1}, {"m": 3}], seeds=[10, 11, 12])
    assert_fail(v, "seed 12: 3 is not < 2, missed by 1")
    assert v.measured == "0, 1, 3" and v.expected == "< 2 (all 3 seeds)"
    assert v.details["n_pass"] == 2 and len(v.details["per_seed"]) == 3


@pytest.mark.parametrize("frac, passed", [(0.6, True), (2 / 3, True), (0.67, False), (1.0, False)])
def test_over_seeds_min_fraction(frac: float, passed: bool) -> None:
    v = ev({**SCALAR, "over_seeds": {"min_fraction": frac}}, [{"m": 0}, {"m": 1}, {"m": 3}])
    assert v.passed is passed, v.message
    assert v.measured.startswith("2/3 seeds pass")
    if not passed:
        assert "short by 1" in v.message


def test_over_seeds_mean_is_elementwise() -> None:
    v = ev({**SCALAR, "over_seeds": "mean"}, [{"m": 0}, {"m": 1}, {"m": 3.5}])  # mean 1.5 < 2
    assert v.passed and v.measured == "1.5 (mean of 3 seeds)"
    v = ev({**SCALAR, "over_seeds": "mean"}, [{"m": 2}, {"m": 1}, {"m": 4.5}])  # mean 2.5
    assert_fail(v, "2.5 is not < 2", "mean of 3 seeds", "missed by 0.5")
    arr = {"metric": "m", "relation": "all_less_than", "value": 1, "over_seeds": "mean"}
    assert ev(arr, [{"m": [0.0, 1.5]}, {"m": [0.5, 0.0]}]).passed  # means 0.25, 0.75
    with pytest.raises(EvaluationError, match="differ in shape"):
        ev(arr, [{"m": [0.0, 1.5]}, {"m": [0.5]}])


@SETTINGS
@given(values=st.lists(st.floats(-10, 10), min_size=1, max_size=8),
       frac=st.floats(0.05, 1.0), target=st.floats(-10, 10))
def test_min_fraction_counts_seeds(values: list[float], frac: float, target: float) -> None:
    t = {"metric": "m", "relation": "less_than", "value": target,
         "over_seeds": {"min_fraction": frac}}
    v = ev(t, [{"m": x} for x in values])
    assert v.passed == (sum(x < target for x in values) >= math.ceil(frac * len(values) - 1e-12))


@SETTINGS
@given(m=st.floats(-100, 100), value=st.floats(-100, 100), tol=st.floats(0, 50))
def test_equals_abs_tol_property(m: float, value: float, tol: float) -> None:
    v = ev({"metric": "m", "relation": "equals", "value": value, "abs_tol": tol}, [{"m": m}])
    assert v.passed == (abs(m - value) <= tol)


# ------------------------------------------------------------ evaluation-time errors
def test_evaluation_errors_are_not_failures() -> None:
    t = {"metric": "m", "relation": "equals", "value": "{k}", "abs_tol": 1}
    with pytest.raises(EvaluationError, match="returned no metric 'm'"):
        ev(t, [{"other": 1}], {"k": 1})
    with pytest.raises(EvaluationError, match="not a number"):
        ev(t, [{"m": 1}], {"k": "ten"})
    with pytest.raises(EvaluationError, match="must be a number for this relation"):
        ev(t, [{"m": [1, 2]}], {"k": 1})
    with pytest.raises(EvaluationError, match="must be a list"):
        ev({"metric": "m", "relation": "all_less_than", "value": 1}, [{"m": 1}])


# ------------------------------------------------------------------------ validation
@pytest.mark.parametrize("table, key, words", [
    ({"metric": "m", "relation": "approx", "value": 1}, "relation", "unknown relation 'approx'"),
    ({"metric": "m", "relation": "equals", "value": 1, "abs_tol": 1, "reason": ""}, "reason",
     "missing tolerance reason"),
    ({"metric": "m", "relation": "equals", "value": 1}, "expectations[0]", "exactly one of"),
    ({"metric": "m", "relation": "equals", "value": 1, "abs_tol": 1, "rel_tol": 1},
     "expectations[0]", "exactly one of"),
    ({"metric": "m", "relation": "equals", "value": 1, "abs_tol": -1}, "abs_tol", ">= 0"),
    ({"metric": "m", "relation": "equals", "value": 1, "int_tol": 0.5}, "int_tol", "integer"),
    ({"metric": "m", "relation": "equals", "value": "ten", "abs_tol": 1}, "value", "number"),
    ({"metric": "m", "relation": "less_than", "value": 1, "tol": 1}, "expectations[0]",
     "unknown key(s) ['tol']"),
    ({"metric": "m", "relation": "between", "low": 2, "high": 1}, "expectations[0]",
     "greater than high"),
    ({"relation": "between", "low": 0, "high": 1}, "metric", "needs 'metric'"),
    ({"metrics": ["a"], "relation": "ordered", "order": "decreasing"}, "metrics", "at least 2"),
    ({"metrics": ["a", "b"], "relation": "ordered", "order": "down"}, "order", "increasing"),
    ({"x": "x", "y": "y", "relation": "linear_fit"}, "expectations[0]", "at least one of"),
    ({"metric": "m", "relation": "confidence_bound", "bound": "upper", "value": 0, "level": 95},
     "level", "(0, 1)"),
    ({"metric": "m", "relation": "confidence_bound", "bound": "upper", "value": 0,
      "over_seeds": "all"}, "over_seeds", "pools the seeds"),
    ({"metric": "m", "relation": "less_than", "value": 1, "over_seeds": {"min_fraction": 1.5}},
     "over_seeds", "min_fraction"),
    ({"metric": "m", "relation": "less_than", "value": 1, "over_seeds": "most"}, "over_seeds",
     "\"all\""),
])
def test_invalid_expectation_names_key_and_problem(table: dict, key: str, words: str) -> None:
    table = {"reason": "r", **table}
    with pytest.raises(ClaimSpecError) as info:
        parse_expectation(table, "expectations[0]", "claims/c.toml", None)
    msg = str(info.value)
    assert msg.startswith("claims/c.toml: ") and key in info.value.key and words in msg, msg


def test_declared_metrics_are_checked() -> None:
    t = {"metric": "slope", "relation": "less_than", "value": 1, "reason": "r"}
    with pytest.raises(ClaimSpecError, match="unknown metric 'slope'"):
        parse_expectation(t, "expectations[0]", "c.toml", frozenset({"slope_hat"}))
    assert parse_expectation(t, "e", "c.toml", frozenset({"slope"})).metric_names == ["slope"]


def test_every_relation_is_documented() -> None:
    from pathlib import Path

    doc = (Path(__file__).parents[2] / "docs" / "claims-format.md").read_text()
    for name in RELATIONS:
        assert f"`{name}`" in doc, name
