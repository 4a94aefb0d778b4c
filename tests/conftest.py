"""Test configuration: a fixed, derandomised hypothesis profile (no deadline)."""
from __future__ import annotations

from hypothesis import settings

settings.register_profile("hessbench", max_examples=25, deadline=None, derandomize=True,
                          print_blob=True)
settings.load_profile("hessbench")
