"""Runnable examples (``python -m hessbench.examples.<name>``)."""
