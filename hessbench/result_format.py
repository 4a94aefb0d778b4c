"""``to_dict``, ``from_dict`` and a short ``repr`` for the result dataclasses of
:mod:`hessbench.results`: results one can print, save as JSON and read back."""
from __future__ import annotations

from dataclasses import fields
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch

from hessbench.plain import to_native

__all__ = ["ResultFormat", "short"]

R = TypeVar("R", bound="ResultFormat")
SHOWN = 3  # values of a 1-D array shown in a repr


class ResultFormat:
    """Mixin of a result dataclass (declared with ``repr=False``). ``_ARRAYS`` name its
    numpy float64 fields, ``_TENSORS`` its float64 torch fields (None allowed):
    :meth:`from_dict` turns their lists back into arrays and tensors."""

    _ARRAYS: ClassVar[tuple[str, ...]] = ()
    _TENSORS: ClassVar[tuple[str, ...]] = ()

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain data (``json.dumps`` works; arrays and tensors become
        nested lists), plus ``"type"``: the class name."""
        return {"type": type(self).__name__,
                **{f.name: to_native(getattr(self, f.name), f.name) for f in fields(self)}}

    @classmethod
    def from_dict(cls: type[R], data: dict[str, Any]) -> R:
        """The result :meth:`to_dict` gave ``data`` for (tensors come back on the CPU)."""
        kind = data.get("type", cls.__name__)
        if kind != cls.__name__:
            raise ValueError(f"{cls.__name__}.from_dict: the data is a {kind}")
        kw = {k: v for k, v in data.items() if k != "type"}
        for name in cls._ARRAYS:
            kw[name] = np.asarray(kw[name], dtype=np.float64)
        for name in cls._TENSORS:
            if kw.get(name) is not None:
                kw[name] = torch.tensor(kw[name], dtype=torch.float64)
        return cls(**kw)

    def __repr__(self) -> str:
        parts = (f"{f.name}={short(getattr(self, f.name))}" for f in fields(self))
        return f"{type(self).__name__}({', '.join(parts)})"


def short(value: Any) -> str:
    """A few characters for ``value``: numbers to 4 significant digits; arrays, tensors
    and long lists by their first values and shape, never in full."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, torch.Tensor):
        dims = "x".join(map(str, value.shape)) or "scalar"
        return f"tensor({dims}, {str(value.dtype).removeprefix('torch.')}, {value.device})"
    if isinstance(value, np.ndarray) and value.ndim != 1:
        return f"array({'x'.join(map(str, value.shape)) or 'scalar'}, {value.dtype})"
    if isinstance(value, (np.ndarray, list)):
        head = ", ".join(short(float(v)) for v in value[:SHOWN])
        return f"[{head}]" if len(value) <= SHOWN else f"[{head}, ... ({len(value)} values)]"
    return repr(value)
