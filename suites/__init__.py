"""asv benchmark suites of hessbench's Hessian core (see asv.conf.json, benchmark_dir)."""
