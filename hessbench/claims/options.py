"""Command-line options shared by ``pytest claims`` (the plugin) and ``hessbench claims``:
the device choices, the ``--experiments`` help, the device check that makes a bad
``--device`` one usage error, and the warning for GPU-scale items on a CPU.

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


def paper_on_cpu_warning(profile: str, device: str, gpu_items: int) -> str | None:
    """The warning for ``gpu_items`` selected items marked ``gpu`` (a profile with
    ``gpu = true``, as paper has by default) about to run on a CPU (``device`` as
    resolved); ``None`` when there are none or the device is not a CPU."""
    if gpu_items == 0 or device != "cpu":
        return None
    return (f"the {profile} profile on a CPU: {gpu_items} selected item"
            f"{'' if gpu_items == 1 else 's'} marked gpu run at the papers' scale and can "
            "take hours; `-m 'not gpu'` selects the items that fit a CPU")
