"""Argument checks shared by the core: each raises ``TypeError`` / ``ValueError`` naming the
argument and the fix, before any work is done."""
from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch

__all__ = ["check_int", "check_float", "check_device", "check_names", "check_finite_batch"]


def check_int(name: str, value: object, *, minimum: int | None = None,
              maximum: int | None = None, hint: str = "") -> int:
    """``value`` as a Python int (numpy integers accepted, bools and floats refused), with
    ``minimum <= value <= maximum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})"
                        + (f"; {hint}" if hint else ""))
    value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        lo = "" if minimum is None else f"{minimum} <= "
        hi = "" if maximum is None else f" <= {maximum}"
        raise ValueError(f"{name} must be an integer with {lo}{name}{hi}, got {value}"
                         + (f"; {hint}" if hint else ""))
    return value


def check_float(name: str, value: object, *, positive: bool = True,
                below: float | None = None, hint: str = "") -> float:
    """``value`` as a finite float (> 0 when ``positive``, < ``below`` when given)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    value = float(value)
    if not math.isfinite(value) or (positive and value <= 0) or \
            (below is not None and value >= below):
        want = "finite" + (" and > 0" if positive else "") + \
            (f" and < {below}" if below is not None else "")
        raise ValueError(f"{name} must be {want}, got {value}" + (f"; {hint}" if hint else ""))
    return value


def check_device(device: torch.device | str | None, default: torch.device) -> torch.device:
    """The ``device=`` option as a usable ``torch.device`` (``None``: ``default``)."""
    if device is None:
        return default
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device={device!r} is not a torch device ({err}); pass e.g. "
                         f"device='cpu' or device='cuda'") from None
    if dev.type == "meta":
        raise ValueError("device='meta' holds shapes but no values, so no curvature can be "
                         "computed on it; pass device='cpu' or 'cuda'")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={device!r} was requested but torch.cuda.is_available() "
                             f"is False; pass device='cpu' (or leave device=None)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device={device!r}: only {torch.cuda.device_count()} CUDA "
                             f"device(s) visible; pass device='cuda:0'")
    return dev


def check_names(params: Sequence[str] | None) -> list[str] | None:
    """The ``params=`` option: a sequence of distinct parameter names (not one string)."""
    if params is None:
        return None
    if isinstance(params, str):
        raise TypeError(f"params must be a list of parameter names, got the string {params!r}; "
                        f"pass params=[{params!r}]")
    names = list(params)
    if not all(isinstance(k, str) for k in names):
        raise TypeError(f"params must be a list of parameter names (strings), got {names!r}")
    dup = sorted({k for k in names if names.count(k) > 1})
    if dup:
        raise ValueError(f"params names {dup} more than once; give each parameter once")
    return names


def check_finite_batch(x: torch.Tensor, y: torch.Tensor, index: int) -> None:
    """``ValueError`` naming batch ``index`` when its floating inputs or targets hold NaN/Inf."""
    for what, t in (("inputs", x), ("targets", y)):
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise ValueError(f"data batch {index} (0-based) has NaN/Inf in its {what}; "
                             f"clean or drop it (every batch is checked as it streams)")
