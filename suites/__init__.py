"""asv benchmark suites of hessbench's Hessian core (see asv.conf.json, benchmark_dir):
one module per subject (``hvp``, ``eigen``, ``trace``, ``density``, ``spectrum``), each
timing every implementation of :data:`hessbench.bench.peers.IMPLEMENTATIONS` through its
``impl`` parameter, and ``track`` with the CI gate's figures."""
