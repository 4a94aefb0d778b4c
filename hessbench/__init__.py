"""hessbench: paper claims about neural-network Hessians as tests, on a fast Hessian core."""
from __future__ import annotations

__version__ = "0.1.0"
