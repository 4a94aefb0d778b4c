"""Errors of the claims engine: a bad declaration, or an evaluation that cannot proceed."""
from __future__ import annotations

from pathlib import Path

__all__ = ["ClaimSpecError", "EvaluationError"]


class ClaimSpecError(ValueError):
    """A claim file is invalid. The message names the file, the key and the problem."""

    def __init__(self, path: Path | str, key: str, problem: str) -> None:
        self.path, self.key, self.problem = str(path), key, problem
        super().__init__(f"{path}: {key}: {problem}")


class EvaluationError(ValueError):
    """An expectation cannot be evaluated on what the experiment returned (a bug in the
    experiment or the declaration, never a claim failure)."""
