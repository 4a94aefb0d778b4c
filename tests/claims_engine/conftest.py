"""Fixtures for the claims-engine tests (helpers live in claims_engine_helpers.py)."""
from __future__ import annotations

from pathlib import Path

import hypothesis  # noqa: F401  (its pytest plugin imports it in every pytester run)
import matplotlib.figure  # noqa: F401
import pytest

# Import these before any pytester run: pytester drops modules first imported inside a
# run, so each run would import them again (seconds) and get a fresh, unpatched registry.
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
