"""Fixtures for the claims-engine tests (helpers live in claims_engine_helpers.py;
``pytester`` is enabled in tests/conftest.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

# Import the engine before any pytester run: pytester removes modules first imported
# inside a run, which would give the next run a fresh (unpatched) registry.
import hessbench.claims.plugin  # noqa: F401
import hessbench.claims.report  # noqa: F401
import hessbench.claims.runner  # noqa: F401
import hessbench.cli  # noqa: F401
import hessbench.experiments  # noqa: F401

@pytest.fixture
def claims_dir(tmp_path: Path) -> Path:
    d = tmp_path / "claims"
    d.mkdir()
    return d
