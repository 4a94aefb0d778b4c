"""The claims engine: claim declarations (``claims/*.toml``) run as tolerance-checked tests.

Modules, in the order data flows: ``discovery`` (which files are claims), ``spec``
(load and validate a declaration), ``expectations`` (relation vocabulary, on
:mod:`hessbench.stats`), ``status`` (the :class:`~hessbench.claims.status.Status`
enum, its labels and the run's counts), ``known`` (a known failure's measured miss beside
its note), ``select`` (``-k`` / ``-m`` of ``claims run``), ``runner`` (grid x seeds -> measurements ->
verdicts, for a claim and its negative controls, shared by the pytest plugin and
``hessbench claims``; its session writes the report), ``report`` (report.json /
report.md / figures from plain data, atomic), ``lock`` (one run per report
directory), ``table`` (terminal tables), ``compare`` (what changed between two
reports) and ``plugin`` (pytest). Imports point one way:
``runner`` uses ``report``, never the reverse. The format is documented in
``docs/claims-format.md``.

Nothing is imported here: the pytest plugin is loaded in every pytest run and must
stay cheap until a claim file is actually collected.
"""
