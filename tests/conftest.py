"""Top-level test configuration.

``pytester`` (used by tests/claims_engine to run the claims plugin in-process) must be
enabled here: pytest rejects ``pytest_plugins`` in non-top-level conftest files.
"""
pytest_plugins = ["pytester"]
