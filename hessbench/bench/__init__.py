"""The benchmark wing: hessbench's Hessian core measured on fixed workloads, next to its
peers (PyHessian), and gated in CI.

* :mod:`~hessbench.bench.workloads` -- the seeded models and data every figure refers to.
* :mod:`~hessbench.bench.impls` -- the timed operations as one interface, and hessbench's
  implementation of it; :mod:`~hessbench.bench.peers` -- the peers' adapters.
* :mod:`~hessbench.bench.specs` -- shared settings and the gate's figure specs.
* :mod:`~hessbench.bench.figures` -- deterministic figures against the exact spectrum;
  :mod:`~hessbench.bench.timing` -- same-process timing.
* :mod:`~hessbench.bench.measure` -- every measurement (gate, comparison, README table).
* :mod:`~hessbench.bench.gate` -- judging against the baseline;
  :mod:`~hessbench.bench.report` -- formatting.

The command line is :mod:`hessbench.cli.bench`; the asv suites in ``suites/`` time the
same operations through :data:`hessbench.bench.peers.IMPLEMENTATIONS`.
"""
