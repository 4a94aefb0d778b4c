"""Helpers for the experiment tests: registry entries and figure records."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pytest
import torch

from hessbench.experiments.registry import Experiment, Measurement, get_experiment


def registered(name: str, func: Callable[..., Measurement], metrics: Iterable[str]) -> Experiment:
    """The registry entry ``name``, asserted to run ``func`` and to declare ``metrics``."""
    exp = get_experiment(name)
    assert exp.func is func and exp.metrics == frozenset(metrics)
    return exp


def record(run: Measurement, params: Mapping[str, Any], seed: int = 0,
           point: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One record of a claim as the engine passes it to a figure function."""
    return {"point": dict(point or {}), "params": params, "seed": seed,
            "metrics": dict(run.metrics), "figure_data": dict(run.figure_data)}


def assert_rejects(func: Callable[..., Measurement], params: dict[str, Any], match: str) -> None:
    """``func(params, 0, cpu)`` raises a ValueError whose message matches ``match``."""
    with pytest.raises(ValueError, match=match):
        func(params, 0, torch.device("cpu"))
