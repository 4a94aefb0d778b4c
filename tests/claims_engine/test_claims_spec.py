"""Loading claim files: the valid example, profiles, grids, and every validation error."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from claims_engine_helpers import SLOPE_OK, write_claim
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
