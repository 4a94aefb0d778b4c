"""Paper experiments, one module each; importing this package fills the registry.

Add one line per experiment module (keep the list sorted):
``from hessbench.experiments import <module>  # noqa: F401``
"""
from hessbench.experiments import dinh_rescaling  # noqa: F401
from hessbench.experiments import example  # noqa: F401
from hessbench.experiments import sagun_outliers  # noqa: F401
from hessbench.experiments import wei_schwab_negative  # noqa: F401
from hessbench.experiments import wei_schwab_network  # noqa: F401
from hessbench.experiments import wei_schwab_trace  # noqa: F401
from hessbench.experiments import zhu_escape  # noqa: F401
from hessbench.experiments import zhu_indicator  # noqa: F401
from hessbench.experiments import zhu_ou  # noqa: F401
