"""Command-line options shared by ``pytest claims`` (the plugin) and ``hessbench claims``:
the device choices, the ``--experiments`` help and the device check that makes a bad
``--device`` one usage error.

Stdlib only at import (the plugin imports this for every pytest run)."""
from __future__ import annotations

__all__ = ["DEVICES", "EXPERIMENTS_HELP", "check_device", "paper_on_cpu_warning"]

DEVICES = ("auto", "cpu", "cuda")
EXPERIMENTS_HELP = ("import MODULE (a dotted module name, or a path to a .py file) to "
                    "register experiments from outside hessbench; repeatable")


def check_device(device: str) -> None:
    """``ValueError`` phrased as the option (``--device cuda: ...``) when ``device`` cannot
    be used here: not one of :data:`DEVICES`, or cuda without a GPU."""
    if device not in DEVICES:
        raise ValueError(f"--device {device}: not one of {', '.join(DEVICES)}")
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ValueError("--device cuda: no CUDA device is available here "
                             "(torch.cuda.is_available() is False); use --device cpu or auto")


def paper_on_cpu_warning(profile: str, device: str) -> str | None:
    """The warning for the paper profile on a CPU (``device`` as resolved), else ``None``."""
    if profile != "paper" or device != "cpu":
        return None
    return ("the paper profile on a CPU: items marked gpu run at the papers' scale and can "
            "take hours; `-m 'not gpu'` selects the paper items that fit a CPU")
