"""Which files are claim declarations (stdlib only: the pytest plugin imports this for
every pytest run, so it must stay cheap)."""
from __future__ import annotations

from pathlib import Path

__all__ = ["is_claim_file", "claim_files"]

NOT_CLAIMS = {"pyproject.toml"}


def is_claim_file(path: Path) -> bool:
    """``claims/<id>.toml``: a .toml file directly in a directory named ``claims``;
    names starting with ``_`` or ``.`` (drafts, templates) are not claims."""
    return (path.suffix == ".toml" and path.parent.name == "claims"
            and path.name not in NOT_CLAIMS and not path.name.startswith(("_", ".")))


def claim_files(directory: Path) -> list[Path]:
    """The claim files of ``directory`` (a ``claims/`` folder), sorted by name."""
    return sorted(p for p in Path(directory).glob("*.toml") if p.is_file() and is_claim_file(p))
