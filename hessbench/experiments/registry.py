"""Registry of paper experiments, looked up by name from claim declarations.

An experiment is a plain function ``f(params, seed, device) -> Measurement``
registered with :func:`experiment` under the name of its module
(``hessbench/experiments/<name>.py``). The claims engine (``hessbench.claims``)
finds it by the ``experiment = "<name>"`` key of a claim file; see
``docs/claims-format.md``.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Measurement", "Experiment", "experiment", "get_experiment", "all_experiments",
           "with_defaults", "REGISTRY"]


@dataclass(frozen=True)
class Measurement:
    """What one run (one parameter set, one seed) of an experiment returns.

    ``metrics``: named measurements (numbers, bools, or nested lists of numbers);
    expectations are evaluated on them and they all go to ``report.json``.
    ``figure_data``: anything JSON-serialisable the experiment's figure needs.
    """

    metrics: Mapping[str, Any]
    figure_data: Mapping[str, Any] = field(default_factory=dict)


FigureFn = Callable[[list[dict[str, Any]]], Any]
ExperimentFn = Callable[[dict[str, Any], int, Any], Measurement]


@dataclass(frozen=True)
class Experiment:
    """A registered experiment.

    ``figure(records)`` gets every record of a claim in one run: dicts with keys
    ``"point"``, ``"params"``, ``"seed"``, ``"metrics"``, ``"figure_data"``; it
    returns a ``matplotlib.figure.Figure`` reproducing the paper's figure.
    ``metrics``, when declared, lets claim files be checked before running.
    ``defaults``, when declared, are the experiment's parameters: ``func`` merges the
    params it is called with over them and rejects any other key.
    """

    name: str
    func: ExperimentFn
    figure: FigureFn | None = None
    metrics: frozenset[str] | None = None
    defaults: Mapping[str, Any] | None = None

    def __call__(self, params: dict[str, Any], seed: int, device: Any) -> Measurement:
        return self.func(params, seed, device)


REGISTRY: dict[str, Experiment] = {}
"""Every registered experiment by name; filled by importing ``hessbench.experiments``."""


def experiment(name: str, *, figure: FigureFn | None = None,
               metrics: Iterable[str] | None = None,
               defaults: Mapping[str, Any] | None = None
               ) -> Callable[[ExperimentFn], ExperimentFn]:
    """Register ``func(params, seed, device) -> Measurement`` under ``name``.

    Without ``defaults`` the decorated function is returned unchanged. With them it is
    returned wrapped: the wrapper calls ``func(with_defaults(name, defaults, params), seed,
    device)``, so ``func`` always sees every parameter and a key outside ``defaults`` is an
    error naming the experiment. Either way the result stays callable directly.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"experiment name must be a non-empty string, got {name!r}")
    if isinstance(metrics, str):
        raise TypeError(f"metrics for experiment {name!r} must be a list of names, not a string")
    declared = None if metrics is None else frozenset(metrics)
    known = None if defaults is None else dict(defaults)

    def register(func: ExperimentFn) -> ExperimentFn:
        old = REGISTRY.get(name)
        if old is not None and _where(old.func) != _where(func):  # a re-import replaces itself
            raise ValueError(f"experiment {name!r} is already registered by "
                             f"{_where(old.func)}; "
                             "pick another name")
        run = func if known is None else _merging_defaults(name, known, func)
        REGISTRY[name] = Experiment(name=name, func=run, figure=figure, metrics=declared,
                                    defaults=known)
        return run

    return register


def _merging_defaults(name: str, defaults: Mapping[str, Any], func: ExperimentFn) -> ExperimentFn:
    @functools.wraps(func)
    def run(params: dict[str, Any], seed: int, device: Any) -> Measurement:
        return func(with_defaults(name, defaults, params), seed, device)

    return run


def _where(func: Callable[..., Any]) -> str:
    return f"{func.__module__}.{func.__qualname__}"


def all_experiments() -> dict[str, Experiment]:
    """Every registered experiment by name, sorted: the package's, then those of the
    ``hessbench.experiments`` entry points (:mod:`hessbench.experiments.external`) and of
    any module imported before."""
    import hessbench.experiments  # noqa: F401  (importing the package fills REGISTRY)
    from hessbench.experiments.external import load_entry_points

    load_entry_points()
    return dict(sorted(REGISTRY.items()))


def get_experiment(name: str) -> Experiment:
    """The experiment registered as ``name`` (see :func:`all_experiments`); ``KeyError``
    naming the known ones otherwise."""
    all_experiments()
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(REGISTRY)) or "(none)"
        raise KeyError(f"unknown experiment {name!r}; registered experiments: {known} (an "
                       "experiment outside hessbench: pass --experiments MODULE or install it "
                       "under the entry point group hessbench.experiments)") from None


def with_defaults(name: str, defaults: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` merged over an experiment's ``defaults``; an unknown key is an error
    naming the experiment and the known keys (a typo in a claim file never goes unseen)."""
    unknown = set(params) - set(defaults)
    if unknown:
        raise ValueError(f"{name}: unknown params {sorted(unknown)}; known: {sorted(defaults)}")
    return {**defaults, **params}
