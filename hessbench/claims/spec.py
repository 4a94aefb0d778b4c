"""Claim declarations: dataclasses, loading with ``tomllib`` and validation.

A claim file ``claims/<id>.toml`` is validated completely on load, its negative
controls (``[[controls]]``, or a ``no_control`` note) included; every error is a
:class:`~hessbench.claims.errors.ClaimSpecError` naming the file, the key and the
problem. The format is documented in ``docs/claims-format.md``.
"""
from __future__ import annotations

import difflib
import itertools
import re
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from hessbench.claims.discovery import claim_files
from hessbench.claims.errors import ClaimSpecError
from hessbench.claims.expectations import Expectation, parse_expectation

__all__ = ["Source", "GridPoint", "Control", "Setup", "Claim", "PROFILES", "load_claim",
           "load_claims"]

PROFILES = ("smoke", "paper")
TOP_KEYS = {"id", "title", "statement", "experiment", "source", "params", "grid", "seeds",
            "profiles", "expectations", "controls", "no_control"}
SOURCE_KEYS = {"paper", "section", "figure", "table", "url"}
OVERRIDE_KEYS = ("params", "grid", "seeds")
PROFILE_KEYS = {*OVERRIDE_KEYS, "gpu", "known_failure"}
CONTROL_KEYS = {"name", "reason", "expect_fail", *OVERRIDE_KEYS, "profiles"}
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
CLAIM_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
CONTROL_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
MISSING_CONTROL = ("every claim needs a negative control: add a [[controls]] table with name, "
                   "reason (citing the paper), expect_fail (the expectation names that must "
                   "fail) and the params and/or grid under which the paper predicts the effect "
                   "is absent; or, where none can exist, no_control = \"why\"")
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
class Control:
    """A negative control: the claim's experiment where the paper predicts the effect is
    absent, in which every expectation named in ``expect_fail`` must fail.

    ``overrides`` (``params``, ``grid``, ``seeds``, as declared) apply over the claim's
    profile-resolved setup; ``profiles`` holds the same keys per profile, over those.
    """

    name: str
    reason: str
    expect_fail: tuple[str, ...]
    overrides: dict[str, Any]
    profiles: dict[str, dict[str, Any]]

    def at(self, profile: str) -> dict[str, Any]:
        """The control's overrides under ``profile``: params merged (the profile's over the
        control's), grid and seeds replaced where the profile gives them."""
        over = self.profiles.get(profile, {})
        return {**self.overrides, **over,
                "params": {**self.overrides.get("params", {}), **over.get("params", {})}}

    def to_dict(self, profile: str) -> dict[str, Any]:
        """Name, reason, expect_fail and the overrides under ``profile`` (report.json)."""
        at = self.at(profile)
        return {"name": self.name, "reason": self.reason, "expect_fail": list(self.expect_fail),
                "params": at["params"],
                "grid": {k: list(v) for k, v in at["grid"].items()} if "grid" in at else None,
                "seeds": list(at["seeds"]) if "seeds" in at else None}


@dataclass(frozen=True)
class Setup:
    """A claim, or one of its controls (``control``), under one profile: merged params,
    the grid and the seeds. ``declared_seeds`` is set when a run overrides the seeds
    (:meth:`with_seeds`): the seeds the declaration gives."""

    profile: str
    params: dict[str, Any]
    grid: dict[str, tuple[Any, ...]]
    seeds: tuple[int, ...]
    gpu: bool
    known_failure: str | None = None
    control: Control | None = None
    declared_seeds: tuple[int, ...] | None = None
    known_failure_points: tuple[str, ...] | None = None

    @property
    def kind(self) -> str:
        """``"control"`` or ``"claim"``."""
        return "claim" if self.control is None else "control"

    def label(self, point: GridPoint) -> str:
        """What names ``point`` in an item id: the point's name for the claim (empty without
        a grid); ``control-<name>`` or ``control-<name>-<point>`` for a control."""
        if self.control is None:
            return point.id
        return "-".join(p for p in ("control", self.control.name, point.id) if p)

    def known_failure_at(self, point: GridPoint) -> str | None:
        """The known-failure note that covers ``point``: the profile's note when it names
        no points, or names ``point``; else ``None``."""
        if self.known_failure_points is not None and point.id not in self.known_failure_points:
            return None
        return self.known_failure

    def with_seeds(self, seeds: tuple[int, ...]) -> Setup:
        """This setup run with ``seeds`` instead of the declared ones (kept in
        ``declared_seeds``)."""
        return replace(self, seeds=tuple(seeds), declared_seeds=self.declared_seeds or self.seeds)

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
    controls: tuple[Control, ...]
    no_control: str | None
    path: Path

    def setup(self, profile: str, control: str | None = None) -> Setup:
        """Resolve ``profile``: its params are merged over the claim's, its grid and seeds
        replace the claim's. Without a ``[profiles.<name>]`` table the claim's own values
        are used. The ``paper`` profile needs a GPU unless it says ``gpu = false``.

        With ``control`` (a control's name), that control's overrides under ``profile``
        (:meth:`Control.at`) apply over the result in the same way; a control has the
        claim's ``gpu`` and never a known failure."""
        if profile not in PROFILES:
            raise ValueError(f"unknown profile {profile!r}; use one of {', '.join(PROFILES)}")
        over = self.profiles.get(profile, {})
        params, grid, seeds = _override((self.params, self.grid, self.seeds), over)
        gpu = over.get("gpu", profile == "paper")
        if control is None:
            return Setup(profile, params, grid, seeds, gpu, over.get("known_failure"),
                         known_failure_points=over.get("known_failure_points"))
        ctl = self.control(control)
        params, grid, seeds = _override((params, grid, seeds), ctl.at(profile))
        return Setup(profile, params, grid, seeds, gpu, control=ctl)

    def setups(self, profile: str) -> list[Setup]:
        """The claim's setup under ``profile``, then each control's, in declaration order."""
        return [self.setup(profile), *(self.setup(profile, c.name) for c in self.controls)]

    def control(self, name: str) -> Control:
        """The control called ``name``; ``KeyError`` listing the known names otherwise."""
        for ctl in self.controls:
            if ctl.name == name:
                return ctl
        raise KeyError(f"claim {self.id!r} has no control {name!r}; its controls: "
                       f"{', '.join(c.name for c in self.controls) or '(none)'}")

    def item_id(self, setup: Setup, point: GridPoint) -> str:
        """``<id>[<label>]`` (:meth:`Setup.label`), or the id alone for the claim's one
        point without a grid."""
        label = setup.label(point)
        return f"{self.id}[{label}]" if label else self.id

    def to_dict(self, profile: str) -> dict[str, Any]:
        """The claim under ``profile`` as plain data for the report: id, title, statement,
        source (its non-empty fields, and as text), experiment, file, seeds, gpu, known
        failure, the expectations with their reasons, the controls (:meth:`Control.to_dict`)
        and the no_control note."""
        setup = self.setup(profile)
        return {"id": self.id, "title": self.title, "statement": self.statement,
                "source": {k: v for k, v in vars(self.source).items() if v},
                "source_text": str(self.source), "experiment": self.experiment,
                "file": str(self.path), "seeds": list(setup.seeds), "gpu": setup.gpu,
                "known_failure": setup.known_failure,
                "known_failure_points": (None if setup.known_failure_points is None
                                         else list(setup.known_failure_points)),
                "expectations": [{"name": e.name, "relation": e.relation, "reason": e.reason,
                                  "over_seeds": e.over_seeds_label, "fields": e.fields}
                                 for e in self.expectations],
                "controls": [c.to_dict(profile) for c in self.controls],
                "no_control": self.no_control}


def _override(base: tuple[dict[str, Any], dict[str, tuple[Any, ...]], tuple[int, ...]],
              over: dict[str, Any]) -> tuple[dict[str, Any], dict[str, tuple[Any, ...]],
                                             tuple[int, ...]]:
    """``(params, grid, seeds)`` with ``over``'s params merged over, its grid and seeds
    replacing."""
    params, grid, seeds = base
    return ({**params, **over.get("params", {})}, over.get("grid", grid),
            over.get("seeds", seeds))


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
    except UnicodeDecodeError as exc:
        raise err("(file)", f"not valid TOML: not UTF-8 text ({exc})") from None
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
    _unique_names([e.name for e in expectations], err)
    controls, no_control = _control_section(data, [e.name for e in expectations], err)

    claim = Claim(id=data["id"], title=data["title"].strip(),
                  statement=" ".join(data["statement"].split()), source=source,
                  experiment=data["experiment"], params=params, grid=grid, seeds=seeds,
                  profiles=profiles, expectations=expectations, controls=controls,
                  no_control=no_control, path=path)
    for profile in PROFILES:
        for setup in claim.setups(profile):
            _check_setup(claim, setup, err)
    return claim


def _check_known_failure_points(setup: Setup, err: Any) -> None:
    """A known failure's ``points`` name grid points of its own profile."""
    if setup.known_failure_points is None:
        return
    ids = [pt.id for pt in setup.points()]
    unknown = [pt for pt in setup.known_failure_points if pt not in ids]
    if unknown:
        raise err(f"profiles.{setup.profile}.known_failure.points",
                  f"unknown grid point(s) {unknown}; the profile's points are {ids}")


def _check_setup(claim: Claim, setup: Setup, err: Any) -> None:
    """Every placeholder of every expectation is a param or grid key of ``setup`` (a
    control evaluates all of them), and no param a control sets is a key of its grid."""
    _check_known_failure_points(setup, err)
    _check_params(claim, setup, err)
    known = set(setup.params) | set(setup.grid)
    ctl = setup.control
    where = "" if ctl is None else f"controls[{claim.controls.index(ctl)}]"
    of = "" if ctl is None else f"of control {ctl.name!r} "
    for i, exp in enumerate(claim.expectations):
        missing = exp.placeholders - known
        if missing:
            what = "" if ctl is None else f"of expectations[{i}] ({exp.name!r}) "
            raise err(where or f"expectations[{i}]", f"placeholder(s) {sorted(missing)} {what}"
                      f"are neither params nor grid keys {of}in profile {setup.profile!r}")
    if ctl is not None:
        both = sorted(set(ctl.at(setup.profile)["params"]) & set(setup.grid))
        if both:
            raise err(f"{where}.params", f"control {ctl.name!r} sets {both}, which the grid "
                      f"of profile {setup.profile!r} also sets (the grid value would win): "
                      "give the control a grid instead")


def _check_params(claim: Claim, setup: Setup, err: Any) -> None:
    """Every param and grid key of ``setup`` is one of the experiment's declared params
    (when it declares defaults): a typo fails on load, not as an ERROR item at run time."""
    from hessbench.experiments.registry import REGISTRY

    defaults = REGISTRY[claim.experiment].defaults
    unknown = [] if defaults is None else sorted((set(setup.params) | set(setup.grid))
                                                  - set(defaults))
    if not unknown:
        return
    if setup.control is not None:
        key = f"controls[{claim.controls.index(setup.control)}]"
    elif set(unknown) & set(claim.params):
        key = "params"
    elif set(unknown) & set(claim.grid):
        key = "grid"
    else:
        key = f"profiles.{setup.profile}"
    hints = [f"{u!r} -> {close[0]!r}" for u in unknown
             if (close := difflib.get_close_matches(u, list(defaults), n=1))]
    raise err(key, f"unknown param(s) {unknown} for experiment {claim.experiment!r} (profile "
              f"{setup.profile!r}); its params: {sorted(defaults)}"
              + (f"; did you mean {', '.join(hints)}?" if hints else ""))


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


def _known_failure(raw: Any, where: str, err: Any) -> dict[str, Any]:
    """A profile's ``known_failure``: a note (the whole profile), or a table
    ``{ note = "...", points = ["<grid point>", ...] }`` for some grid points only."""
    points = None
    if isinstance(raw, dict):
        unknown = set(raw) - {"note", "points"}
        if unknown or "note" not in raw or "points" not in raw:
            raise err(where, "as a table it needs exactly the keys 'note' and 'points' "
                      f"(got {sorted(raw)}), e.g. {{ note = \"...\", points = [\"k=5\"] }}")
        points = raw["points"]
        if (not isinstance(points, list) or not points
                or not all(isinstance(pt, str) and pt for pt in points)):
            raise err(f"{where}.points", "must be a non-empty list of grid point ids as in the "
                      "item ids, e.g. [\"k=5-optimizer=sgd\"]")
        raw = raw["note"]
    if not isinstance(raw, str) or not raw.strip():
        raise err(where, "must be a non-empty string saying what misses and by how much")
    return {"known_failure": raw.strip(),
            "known_failure_points": None if points is None else tuple(points)}


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
        prof = _overrides(table, where, err)
        if "gpu" in table:
            if not isinstance(table["gpu"], bool):
                raise err(f"{where}.gpu", f"must be true or false, got {table['gpu']!r}")
            prof["gpu"] = table["gpu"]
        if "known_failure" in table:
            prof.update(_known_failure(table["known_failure"], f"{where}.known_failure", err))
        out[name] = prof
    return out


def _overrides(table: dict[str, Any], where: str, err: Any) -> dict[str, Any]:
    """The validated ``params``, ``grid`` and ``seeds`` of a profile or control table."""
    parse = {"params": _params, "grid": _grid, "seeds": _seeds}
    return {key: parse[key](table[key], f"{where}.{key}", err)
            for key in OVERRIDE_KEYS if key in table}


def _unique_names(names: list[str], err: Any) -> None:
    for i, name in enumerate(names):
        if name in names[:i]:
            raise err(f"expectations[{i}].name", f"duplicate expectation name {name!r} (also "
                      f"expectations[{names.index(name)}]); names must be unique within a claim "
                      "(controls list them; the default is \"<metric> <relation>\"): give a name")


def _control_section(data: dict[str, Any], names: list[str],
                     err: Any) -> tuple[tuple[Control, ...], str | None]:
    """``([[controls]], None)`` or ``((), no_control)``: exactly one of the two is given."""
    if "controls" in data and "no_control" in data:
        raise err("no_control", "give [[controls]] or no_control, not both")
    if "no_control" in data:
        note = data["no_control"]
        if not isinstance(note, str) or not note.strip():
            raise err("no_control", "must be a non-empty string saying why no negative "
                      "control can exist")
        return (), " ".join(note.split())
    if "controls" not in data:
        raise err("controls", MISSING_CONTROL)
    raw = data["controls"]
    if not isinstance(raw, list) or not raw:
        raise err("controls", "must be one or more [[controls]] tables")
    controls: list[Control] = []
    for i, table in enumerate(raw):
        ctl = _control(table, f"controls[{i}]", names, err)
        if any(c.name == ctl.name for c in controls):
            raise err(f"controls[{i}].name", f"duplicate control name {ctl.name!r}; control "
                      "names must be unique within a claim")
        controls.append(ctl)
    return tuple(controls), None


def _control(table: Any, where: str, names: list[str], err: Any) -> Control:
    if not isinstance(table, dict):
        raise err(where, "must be a table ([[controls]])")
    unknown = set(table) - CONTROL_KEYS
    if unknown:
        raise err(where, f"unknown key(s) {sorted(unknown)}; allowed: {sorted(CONTROL_KEYS)}")
    name = table.get("name")
    if not isinstance(name, str) or not CONTROL_NAME.match(name):
        raise err(f"{where}.name", f"required, a lower-case slug of letters, digits and '-' "
                  f"(e.g. name = \"gd\"), got {name!r}")
    reason = table.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise err(f"{where}.reason", f"control {name!r}: required, a non-empty string citing "
                  "the paper (why the effect is absent there)")
    expect_fail = _expect_fail(table.get("expect_fail"), f"{where}.expect_fail", name, names,
                               err)
    profiles = table.get("profiles", {})
    if not isinstance(profiles, dict):
        raise err(f"{where}.profiles", f"must be a table, got {type(profiles).__name__}")
    for prof, over in profiles.items():
        if prof not in PROFILES:
            raise err(f"{where}.profiles.{prof}", f"unknown profile; use {', '.join(PROFILES)}")
        if not isinstance(over, dict) or set(over) - set(OVERRIDE_KEYS):
            raise err(f"{where}.profiles.{prof}", f"must be a table of {', '.join(OVERRIDE_KEYS)}"
                      f", got {over!r}")
    ctl = Control(name=name, reason=" ".join(reason.split()), expect_fail=expect_fail,
                  overrides=_overrides(table, where, err),
                  profiles={p: _overrides(o, f"{where}.profiles.{p}", err)
                            for p, o in profiles.items()})
    for prof in PROFILES:
        at = ctl.at(prof)
        if not at["params"] and "grid" not in at:
            raise err(where, f"control {name!r} changes nothing in profile {prof!r}: give the "
                      "params and/or grid under which the paper predicts the effect is absent")
    return ctl


def _expect_fail(raw: Any, where: str, control: str, names: list[str],
                 err: Any) -> tuple[str, ...]:
    if not (isinstance(raw, list) and raw and all(isinstance(n, str) for n in raw)):
        raise err(where, f"control {control!r}: required, a non-empty list of the claim's "
                  f"expectation names, got {raw!r}")
    unknown = [n for n in raw if n not in names]
    if unknown:
        raise err(where, f"control {control!r}: unknown expectation name(s) {unknown}; the "
                  f"claim's expectations: {', '.join(repr(n) for n in names)}")
    if len(set(raw)) != len(raw):
        raise err(where, f"control {control!r}: duplicate names in {raw!r}")
    return tuple(raw)
