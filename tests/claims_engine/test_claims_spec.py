"""Loading claim files: the valid example, profiles, grids, and every validation error."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from claims_engine_helpers import CONTROL_FALLING, SLOPE_OK, SLOPE_POSITIVE, write_claim, \
    write_controlled
from hessbench.claims.discovery import claim_files, is_claim_file
from hessbench.claims.errors import ClaimSpecError
from hessbench.claims.spec import load_claim, load_claims
from hessbench.experiments.registry import REGISTRY, Measurement, experiment, get_experiment

PROFILES = '''[params]
noise = 0.01

[grid]
slope = [1.0, 2.0]
n_points = [5, 11]

[profiles.smoke]
params = { trials = 10 }
grid = { slope = [3.0] }
seeds = [7]

[profiles.paper]
seeds = [0, 1, 2, 3]
'''


def test_load_valid_claim_and_profiles(claims_dir: Path) -> None:
    claim = load_claim(write_claim(claims_dir, sections=PROFILES))
    assert (claim.id, claim.experiment, claim.seeds) == ("demo", "example_line", (0, 1))
    assert str(claim.source) == "Example (2024), not a paper, Sec. 0, Fig. 0"
    assert claim.expectations[0].name == "slope recovered"

    smoke = claim.setup("smoke")
    assert smoke.params == {"noise": 0.01, "trials": 10}  # merged
    assert smoke.grid == {"slope": (3.0,)} and smoke.seeds == (7,) and not smoke.gpu
    [p] = smoke.points()
    assert p.id == "slope=3.0" and p.params == {"noise": 0.01, "trials": 10, "slope": 3.0}

    paper = claim.setup("paper")
    assert paper.seeds == (0, 1, 2, 3) and paper.gpu
    assert [p.id for p in paper.points()] == ["slope=1.0-n_points=5", "slope=1.0-n_points=11",
                                             "slope=2.0-n_points=5", "slope=2.0-n_points=11"]


def test_claim_without_grid_has_one_point(claims_dir: Path) -> None:
    body = SLOPE_OK.replace('"{slope}"', "1.0")
    [p] = load_claim(write_claim(claims_dir, sections="", body=body)).setup("smoke").points()
    assert (p.id, p.values, p.params) == ("", {}, {})


def test_discovery_skips_non_claims(tmp_path: Path) -> None:
    d = tmp_path / "claims"
    write_claim(d, "b")
    write_claim(d, "a")
    (d / "_template.toml").write_text("x = 1")
    (d / "notes.md").write_text("x")
    (tmp_path / "pyproject.toml").write_text("")
    assert [p.name for p in claim_files(d)] == ["a.toml", "b.toml"]
    assert not is_claim_file(tmp_path / "pyproject.toml")
    assert not is_claim_file(tmp_path / "other" / "a.toml")
    assert [c.id for c in load_claims(d)] == ["a", "b"]


GRID_BAD = {"1.0": "must be a non-empty list", "[]": "must be a non-empty list",
            "[1.0, 1.0]": "duplicate", "[[1.0], [2.0]]": "values must be"}
SEEDS_BAD = {"[]": "non-empty list", "[0, 0]": "duplicate seeds", "[-1]": "non-negative"}
BAD = [
    # (what to write, key in the message, words in the message)
    ({"experiment": "nonexistent"}, "experiment", "unknown experiment 'nonexistent'"),
    ({"body": SLOPE_OK.replace("slope_hat", "slope_hats")}, "expectations[0]",
     "unknown metric 'slope_hats'"),
    ({"body": SLOPE_OK.replace('reason = "noise 0.01 on 11 points moves the fitted slope by '
                               'about 0.01"', "")}, "expectations[0].reason",
     "missing tolerance reason"),
    ({"body": SLOPE_OK.replace("equals", "roughly")}, "expectations[0].relation",
     "unknown relation 'roughly'"),
    *[({"sections": f"[grid]\nslope = {grid}\n"}, "grid.slope", f"bad grid: {words}")
      for grid, words in GRID_BAD.items()],
    ({"sections": "[profiles.smoke]\ngrid = { slope = 2 }\n"}, "profiles.smoke.grid.slope",
     "bad grid"),
    ({"sections": "[profiles.fast]\nseeds = [0]\n"}, "profiles.fast", "unknown profile"),
    ({"sections": "[profiles.smoke]\nseed = [0]\n"}, "profiles.smoke", "unknown key(s) ['seed']"),
    *[({"seeds": seeds}, "seeds", words) for seeds, words in SEEDS_BAD.items()],
    ({"sections": "[params]\nnoise = 0.01\n"}, "expectations[0]",
     "placeholder(s) ['slope'] are neither params nor grid keys in profile 'smoke'"),
    ({"head": 'owner = "me"\n'}, "owner", "unknown top-level key"),
    ({"body": ""}, "expectations", "at least one [[expectations]]"),
    ({"head": "", "claim_id": "Bad Id"}, "id", "must be lower-case"),
]


@pytest.mark.parametrize("change, key, words", BAD, ids=[b[2][:30] for b in BAD])
def test_validation_errors_name_file_key_and_problem(claims_dir: Path, change: dict, key: str,
                                                     words: str) -> None:
    kwargs = {"sections": "[params]\nnoise = 0.01\n\n[grid]\nslope = [1.0, 2.0]\n", **change}
    path = write_claim(claims_dir, kwargs.pop("claim_id", "demo"), **kwargs)
    with pytest.raises(ClaimSpecError) as info:
        load_claim(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: ") and info.value.key == key and words in msg, msg


def test_file_level_errors(claims_dir: Path) -> None:
    bad = claims_dir / "broken.toml"
    bad.write_text("id = \n")
    with pytest.raises(ClaimSpecError, match=r"broken.toml: \(file\): not valid TOML"):
        load_claim(bad)
    other = write_claim(claims_dir, "demo")
    renamed = other.rename(claims_dir / "renamed.toml")
    with pytest.raises(ClaimSpecError, match="'demo' must equal the file name stem 'renamed'"):
        load_claim(renamed)
    src = write_claim(claims_dir, "nofig")
    src.write_text(src.read_text().replace('figure = "Fig. 0"\n', ""))
    with pytest.raises(ClaimSpecError, match="source: needs figure and/or table"):
        load_claim(src)


# --------------------------------------------------------------------------- registry
def test_registry_rejects_duplicate_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("hessbench.experiments.registry.REGISTRY", dict(REGISTRY))

    def other(params: dict, seed: int, device: torch.device) -> Measurement:
        return Measurement(metrics={})

    with pytest.raises(ValueError, match="already registered"):
        experiment("example_line")(other)
    with pytest.raises(KeyError, match="registered experiments: .*example_line"):
        get_experiment("nope")


def test_example_experiment_is_seeded_and_exact_without_noise() -> None:
    exp = get_experiment("example_line")
    cpu = torch.device("cpu")
    a, b = exp({"noise": 0.1}, 0, cpu), exp({"noise": 0.1}, 0, cpu)
    c = exp({"noise": 0.1}, 1, cpu)
    assert a.metrics == b.metrics and a.metrics["y"] != c.metrics["y"]
    assert set(a.metrics) == exp.metrics
    exact = exp({"slope": -2.0, "intercept": 0.5}, 3, cpu).metrics
    assert exact["slope_hat"] == pytest.approx(-2.0, abs=1e-12)
    assert exact["intercept_hat"] == pytest.approx(0.5, abs=1e-12)
    with pytest.raises(ValueError, match="unknown params"):
        exp({"slop": 1.0}, 0, cpu)


def test_documented_example_is_valid_toml_with_known_keys() -> None:
    import tomllib

    from hessbench.claims.expectations import RELATIONS
    from hessbench.claims.spec import TOP_KEYS

    doc = (Path(__file__).parents[2] / "docs" / "claims-format.md").read_text()
    example = doc.split("```toml\n", 1)[1].split("```", 1)[0]
    data = tomllib.loads(example)
    assert set(data) <= TOP_KEYS and isinstance(data["seeds"], list)
    assert set(data["grid"]) == {"k", "optimizer"}  # seeds did not fall into [grid]
    assert all(e["relation"] in RELATIONS for e in data["expectations"])
    names = {e["name"] for e in data["expectations"]}
    assert data["controls"] and all(set(c["expect_fail"]) <= names for c in data["controls"])


# --------------------------------------------------------------------------- controls
def test_controls_resolve_over_the_profile(claims_dir: Path) -> None:
    controls = CONTROL_FALLING + '''
[[controls]]
name = "cheap-at-smoke"
params = { slope = -2.0, n_points = 21 }
grid = { noise = [0.0, 0.1] }
seeds = [5, 6, 7]
expect_fail = ["slope positive"]
reason = "Example (2024), Sec. 0: a control with its own grid, seeds and a cheaper smoke run"
profiles.smoke = { params = { n_points = 5 }, seeds = [5] }
'''
    claim = load_claim(write_controlled(claims_dir, sections=PROFILES, controls=controls))
    assert [c.name for c in claim.controls] == ["falling", "cheap-at-smoke"]
    assert claim.no_control is None and claim.controls[0].expect_fail == ("slope positive",)
    falling = claim.setup("smoke", "falling")
    assert falling.params == {"noise": 0.01, "trials": 10}
    assert falling.grid == {"slope": (-1.0, -2.0)} and falling.seeds == (7,)  # the profile's
    assert falling.known_failure is None and falling.kind == "control" and not falling.gpu
    assert [claim.item_id(falling, p) for p in falling.points()] == [
        "demo[control-falling-slope=-1.0]", "demo[control-falling-slope=-2.0]"]
    cheap = claim.setup("smoke", "cheap-at-smoke")
    assert cheap.params == {"noise": 0.01, "trials": 10, "slope": -2.0, "n_points": 5}
    assert cheap.grid == {"noise": (0.0, 0.1)} and cheap.seeds == (5,)
    paper = claim.setup("paper", "cheap-at-smoke")
    assert paper.params["n_points"] == 21 and paper.seeds == (5, 6, 7) and paper.gpu
    assert [s.kind for s in claim.setups("smoke")] == ["claim", "control", "control"]
    assert claim.to_dict("smoke")["controls"][1] == {
        "name": "cheap-at-smoke", "reason": "Example (2024), Sec. 0: a control with its own "
        "grid, seeds and a cheaper smoke run", "expect_fail": ["slope positive"],
        "params": {"slope": -2.0, "n_points": 5}, "grid": {"noise": [0.0, 0.1]}, "seeds": [5]}


def test_no_control_is_kept(claims_dir: Path) -> None:
    claim = load_claim(write_claim(claims_dir, no_control="an exact  identity"))
    assert claim.controls == () and claim.no_control == "an exact identity"
    assert [s.kind for s in claim.setups("paper")] == ["claim"]


def control(extra: str, name: str = "falling", params: str = "{ slope = -1.0 }",
            expect_fail: str = '["slope positive"]') -> str:
    return (f'\n[[controls]]\nname = "{name}"\nparams = {params}\nexpect_fail = {expect_fail}\n'
            f'reason = "Example, Sec. 0"\n{extra}')


NO_GRID = "[params]\nnoise = 0.01\nslope = 1.0\n"
CONTROL_BAD = [
    # (write_controlled kwargs, key in the message, words in the message)
    ({"controls": control("", expect_fail='["slope positiv"]')}, "controls[0].expect_fail",
     "control 'falling': unknown expectation name(s) ['slope positiv']; the claim's "
     "expectations: 'slope positive'"),
    ({"controls": control("", expect_fail="[]")}, "controls[0].expect_fail", "non-empty list"),
    ({"controls": ""}, "controls", "every claim needs a negative control: add a [[controls]]"),
    ({"controls": CONTROL_FALLING, "no_control": "none"}, "no_control", "not both"),
    ({"controls": "", "no_control": " "}, "no_control", "non-empty string"),
    ({"controls": CONTROL_FALLING * 2}, "controls[1].name", "duplicate control name 'falling'"),
    ({"controls": control("", name="GD")}, "controls[0].name", "lower-case slug"),
    ({"controls": control("", params="{}")}, "controls[0]",
     "control 'falling' changes nothing in profile 'smoke'"),
    ({"controls": control("", params="{ noise = 0.1 }").replace('reason = "Example, Sec. 0"\n',
                                                                "")},
     "controls[0].reason", "control 'falling': required, a non-empty string citing the paper"),
    ({"controls": control("seed = [1]\n")}, "controls[0]", "unknown key(s) ['seed']"),
    ({"controls": control("profiles.fast = { seeds = [1] }\n")}, "controls[0].profiles.fast",
     "unknown profile"),
    ({"controls": control("profiles.smoke = { gpu = false }\n")}, "controls[0].profiles.smoke",
     "must be a table of params, grid, seeds"),
    ({"controls": control("profiles.smoke = { seeds = [0, 0] }\n")},
     "controls[0].profiles.smoke.seeds", "duplicate seeds"),
    ({"controls": control("")}, "controls[0].params",
     "control 'falling' sets ['slope'], which the grid of profile 'smoke' also sets"),
    ({"controls": control("grid = { noise = [0.1] }\n", params="{ n_points = 5 }",
                          expect_fail='["slope recovered"]'), "body": SLOPE_OK}, "controls[0]",
     "placeholder(s) ['slope'] of expectations[0] ('slope recovered') are neither params nor "
     "grid keys of control 'falling' in profile 'smoke'"),
    ({"sections": NO_GRID, "body": SLOPE_POSITIVE * 2}, "expectations[1].name",
     "duplicate expectation name 'slope positive' (also expectations[0])"),
]


@pytest.mark.parametrize("change, key, words", CONTROL_BAD,
                         ids=[f"{b[1]}: {b[2][:40]}" for b in CONTROL_BAD])
def test_control_errors_name_file_key_and_problem(claims_dir: Path, change: dict, key: str,
                                                  words: str) -> None:
    path = write_controlled(claims_dir, **change)
    with pytest.raises(ClaimSpecError) as info:
        load_claim(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: ") and info.value.key == key and words in msg, msg
