"""Plain Python data from numpy and torch values: what ``json.dumps`` accepts.

Used by the result types' ``to_dict`` (:mod:`hessbench.results`) and by the claims
engine for an experiment's metrics (the core imports no wing, so this lives here).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["to_native"]


def to_native(value: Any, where: str = "value") -> Any:
    """``value`` as plain Python (dict / list / str / int / float / bool / None); numpy and
    torch scalars and arrays become numbers and (nested) lists. ``TypeError`` naming
    ``where`` for anything else."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"{where}: keys must be strings, got {k!r}")
            out[k] = to_native(v, f"{where}.{k}")
        return out
    if isinstance(value, (list, tuple)):
        return [to_native(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if hasattr(value, "detach"):  # torch.Tensor (tolist keeps bfloat16 too)
        value = value.detach().cpu()
    if hasattr(value, "tolist") and hasattr(value, "dtype"):  # numpy or torch, scalar or array
        return to_native(value.tolist(), where)
    raise TypeError(f"{where}: {type(value).__name__} is not JSON-serialisable; return numbers, "
                    "bools, strings, lists or dicts")
