"""Closed forms of the losses the experiments use.

References: C. Szegedy et al., "Rethinking the Inception Architecture for Computer Vision",
CVPR 2016 (label smoothing).
"""
from __future__ import annotations

import math

__all__ = ["smoothed_target_entropy"]


def smoothed_target_entropy(num_classes: int, label_smoothing: float) -> float:
    """H(q) for q = (1 - eps) onehot + eps / K: the minimum of the label-smoothed CE.

    H(q) = -(1 - eps + eps/K) log(1 - eps + eps/K) - (K - 1) (eps/K) log(eps/K), with
    0 log 0 = 0 (so H = 0 at eps = 0).
    """
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    on = 1.0 - label_smoothing + label_smoothing / num_classes
    off = label_smoothing / num_classes
    return -(on * math.log(on) + ((num_classes - 1) * off * math.log(off) if off > 0 else 0.0))
