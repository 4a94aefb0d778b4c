"""The claims engine: claim declarations (``claims/*.toml``) run as tolerance-checked tests.

Modules, in the order data flows: ``discovery`` (which files are claims), ``spec``
(load and validate a declaration), ``expectations`` (relation vocabulary) with
``stats``, ``runner`` (grid x seeds -> measurements -> verdicts, shared by the
pytest plugin and the CLI), ``report`` (report.json / report.md / figures, atomic),
``table`` (terminal tables) and ``plugin`` (pytest). The format is documented in
``docs/claims-format.md``.

Nothing is imported here: the pytest plugin is loaded in every pytest run and must
stay cheap until a claim file is actually collected.
"""
