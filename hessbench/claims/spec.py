"""Claim declarations: dataclasses, loading with ``tomllib`` and validation.

A claim file ``claims/<id>.toml`` is validated completely on load; every error is a
:class:`~hessbench.claims.errors.ClaimSpecError` naming the file, the key and the
problem. The format is documented in ``docs/claims-format.md``.
"""
from __future__ import annotations

import itertools
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hessbench.claims.discovery import claim_files
from hessbench.claims.errors import ClaimSpecError
from hessbench.claims.expectations import Expectation, parse_expectation

__all__ = ["Source", "GridPoint", "Setup", "Claim", "PROFILES", "load_claim", "load_claims"]

PROFILES = ("smoke", "paper")
TOP_KEYS = {"id", "title", "statement", "experiment", "source", "params", "grid", "seeds",
            "profiles", "expectations"}
SOURCE_KEYS = {"paper", "section", "figure", "table", "url"}
PROFILE_KEYS = {"params", "grid", "seeds", "gpu", "known_failure"}
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
CLAIM_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
Scalar = (str, int, float, bool)


@dataclass(frozen=True)
class Source:
    """Where the claim is stated: paper, section and figure and/or table."""

    paper: str
    section: str
    figure: str = ""
    table: str = ""
    url: str = ""

    def __str__(self) -> str:
        section = f"Sec. {self.section}" if self.section[:1].isdigit() else self.section
        parts = [self.paper, section, self.figure, self.table]
        return ", ".join(p for p in parts if p)


@dataclass(frozen=True)
class GridPoint:
    """One point of a claim's grid: ``values`` (grid keys only) and the merged ``params``."""

    id: str
    values: dict[str, Any]
    params: dict[str, Any]


@dataclass(frozen=True)
class Setup:
    """A claim under one profile: merged params, the grid and the seeds."""

    profile: str
    params: dict[str, Any]
    grid: dict[str, tuple[Any, ...]]
    seeds: tuple[int, ...]
    gpu: bool
    known_failure: str | None = None

    def points(self) -> list[GridPoint]:
        """Cartesian product of the grid in declaration order (one point when no grid)."""
        keys = list(self.grid)
        points = []
        for combo in itertools.product(*(self.grid[k] for k in keys)):
            values = dict(zip(keys, combo))
            point_id = "-".join(f"{k}={_id_value(v)}" for k, v in values.items())
            points.append(GridPoint(point_id, values, {**self.params, **values}))
        return points


def _id_value(v: Any) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    return re.sub(r"\s+", "_", str(v))


@dataclass(frozen=True)
class Claim:
    """A validated claim declaration."""

    id: str
    title: str
    statement: str
    source: Source
    experiment: str
    params: dict[str, Any]
    grid: dict[str, tuple[Any, ...]]
    seeds: tuple[int, ...]
    profiles: dict[str, dict[str, Any]]
    expectations: tuple[Expectation, ...]
    path: Path

    def setup(self, profile: str) -> Setup:
        """Resolve ``profile``: its params are merged over the claim's, its grid and seeds
        replace the claim's. Without a ``[profiles.<name>]`` table the claim's own values
        are used. The ``paper`` profile needs a GPU unless it says ``gpu = false``."""
        if profile not in PROFILES:
            raise ValueError(f"unknown profile {profile!r}; use one of {', '.join(PROFILES)}")
        over = self.profiles.get(profile, {})
        return Setup(profile=profile, params={**self.params, **over.get("params", {})},
                     grid=over.get("grid", self.grid), seeds=over.get("seeds", self.seeds),
                     gpu=over.get("gpu", profile == "paper"),
                     known_failure=over.get("known_failure"))

    def to_dict(self, profile: str) -> dict[str, Any]:
        """The claim under ``profile`` as plain data for the report: id, title, statement,
        source (its non-empty fields, and as text), experiment, file, seeds, gpu, known
        failure and the expectations with their reasons."""
        setup = self.setup(profile)
        return {"id": self.id, "title": self.title, "statement": self.statement,
                "source": {k: v for k, v in vars(self.source).items() if v},
                "source_text": str(self.source), "experiment": self.experiment,
                "file": str(self.path), "seeds": list(setup.seeds), "gpu": setup.gpu,
                "known_failure": setup.known_failure,
                "expectations": [{"name": e.name, "relation": e.relation, "reason": e.reason,
                                  "over_seeds": e.over_seeds_label, "fields": e.fields}
                                 for e in self.expectations]}


def load_claim(path: Path | str) -> Claim:
    """Read and validate one claim file (needs the experiment registry)."""
    from hessbench.experiments.registry import REGISTRY, get_experiment

    path = Path(path)

    def err(key: str, problem: str) -> ClaimSpecError:
        return ClaimSpecError(path, key, problem)

    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise err("(file)", f"not valid TOML: {exc}") from None
    except OSError as exc:
        raise err("(file)", f"cannot read: {exc}") from None

    unknown = set(data) - TOP_KEYS
    if unknown:
        raise err(", ".join(sorted(unknown)), f"unknown top-level key(s); allowed: "
                  f"{', '.join(sorted(TOP_KEYS))}")
    for key in ("id", "title", "statement", "experiment"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            raise err(key, "required, a non-empty string")
    if data["id"] != path.stem:
        raise err("id", f"{data['id']!r} must equal the file name stem {path.stem!r}")
    if not CLAIM_ID.match(data["id"]):
        raise err("id", f"{data['id']!r} must be lower-case letters, digits, '-', '_' or '.'")

    try:
        get_experiment(data["experiment"])
    except KeyError as exc:
        raise err("experiment", exc.args[0]) from None
    declared = REGISTRY[data["experiment"]].metrics

    source = _source(data.get("source"), err)
    params = _params(data.get("params", {}), "params", err)
    grid = _grid(data.get("grid", {}), "grid", err)
    if "seeds" not in data:
        raise err("seeds", "required, a list of non-negative integers, e.g. seeds = [0, 1, 2]")
    seeds = _seeds(data["seeds"], "seeds", err)
    profiles = _profiles(data.get("profiles", {}), err)

    raw = data.get("expectations")
    if not isinstance(raw, list) or not raw:
        raise err("expectations", "required, at least one [[expectations]] table")
    expectations = tuple(parse_expectation(t, f"expectations[{i}]", path, declared)
                         for i, t in enumerate(raw))

    claim = Claim(id=data["id"], title=data["title"].strip(),
                  statement=" ".join(data["statement"].split()), source=source,
                  experiment=data["experiment"], params=params, grid=grid, seeds=seeds,
                  profiles=profiles, expectations=expectations, path=path)
    for profile in PROFILES:
        setup = claim.setup(profile)
        known = set(setup.params) | set(setup.grid)
        for i, exp in enumerate(expectations):
            missing = exp.placeholders - known
            if missing:
                raise err(f"expectations[{i}]", f"placeholder(s) {sorted(missing)} are neither "
                          f"params nor grid keys in profile {profile!r}")
    return claim


def load_claims(directory: Path | str) -> list[Claim]:
    """Every claim in ``directory`` (see :func:`~hessbench.claims.discovery.claim_files`),
    sorted by id; raises on the first invalid file."""
    return [load_claim(p) for p in claim_files(Path(directory))]


# ------------------------------------------------------------------------- sections
def _source(raw: Any, err: Any) -> Source:
    if not isinstance(raw, dict):
        raise err("source", "required table: [source] with paper, section and figure/table")
    unknown = set(raw) - SOURCE_KEYS
    if unknown:
        raise err("source", f"unknown key(s) {sorted(unknown)}; allowed: {sorted(SOURCE_KEYS)}")
    for key, value in raw.items():
        if not isinstance(value, str):
            raise err(f"source.{key}", f"must be a string, got {value!r}")
    for key in ("paper", "section"):
        if not raw.get(key, "").strip():
            raise err(f"source.{key}", "required, a non-empty string")
    if not (raw.get("figure", "").strip() or raw.get("table", "").strip()):
        raise err("source", "needs figure and/or table (where in the paper the claim is shown)")
    return Source(**{k: v.strip() for k, v in raw.items()})


def _params(raw: Any, key: str, err: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise err(key, f"must be a table, got {type(raw).__name__}")
    for name in raw:
        if not NAME.match(name):
            raise err(f"{key}.{name}", "parameter names must be identifiers")
    return dict(raw)


def _grid(raw: Any, key: str, err: Any) -> dict[str, tuple[Any, ...]]:
    if not isinstance(raw, dict):
        raise err(key, f"bad grid: must be a table of lists, got {type(raw).__name__}")
    grid = {}
    for name, values in raw.items():
        where = f"{key}.{name}"
        if not NAME.match(name):
            raise err(where, "bad grid: parameter names must be identifiers")
        if not isinstance(values, list) or not values:
            raise err(where, f"bad grid: must be a non-empty list of values, got {values!r}")
        if not all(isinstance(v, Scalar) for v in values):
            raise err(where, f"bad grid: values must be strings, numbers or booleans, got {values!r}")
        if len({(type(v), v) for v in values}) != len(values):
            raise err(where, f"bad grid: duplicate values in {values!r}")
        grid[name] = tuple(values)
    return grid


def _seeds(raw: Any, key: str, err: Any) -> tuple[int, ...]:
    ok = (isinstance(raw, list) and raw
          and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in raw))
    if not ok:
        raise err(key, f"must be a non-empty list of non-negative integers, got {raw!r}")
    if len(set(raw)) != len(raw):
        raise err(key, f"duplicate seeds in {raw!r}")
    return tuple(raw)


def _profiles(raw: Any, err: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(raw, dict):
        raise err("profiles", f"must be a table, got {type(raw).__name__}")
    out: dict[str, dict[str, Any]] = {}
    for name, table in raw.items():
        where = f"profiles.{name}"
        if name not in PROFILES:
            raise err(where, f"unknown profile; use {', '.join(PROFILES)}")
        if not isinstance(table, dict):
            raise err(where, "must be a table")
        unknown = set(table) - PROFILE_KEYS
        if unknown:
            raise err(where, f"unknown key(s) {sorted(unknown)}; allowed: {sorted(PROFILE_KEYS)}")
        prof: dict[str, Any] = {}
        if "params" in table:
            prof["params"] = _params(table["params"], f"{where}.params", err)
        if "grid" in table:
            prof["grid"] = _grid(table["grid"], f"{where}.grid", err)
        if "seeds" in table:
            prof["seeds"] = _seeds(table["seeds"], f"{where}.seeds", err)
        if "gpu" in table:
            if not isinstance(table["gpu"], bool):
                raise err(f"{where}.gpu", f"must be true or false, got {table['gpu']!r}")
            prof["gpu"] = table["gpu"]
        if "known_failure" in table:
            note = table["known_failure"]
            if not isinstance(note, str) or not note.strip():
                raise err(f"{where}.known_failure", "must be a non-empty string saying what "
                          "misses and by how much")
            prof["known_failure"] = note.strip()
        out[name] = prof
    return out
