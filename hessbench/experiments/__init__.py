"""Paper experiments; importing this package fills the registry.

One module per experiment, named as the experiment it registers
(``hessbench/experiments/<name>.py`` registers ``<name>``, the name claim files give as
``experiment = "<name>"``). Besides them: ``registry`` (the registry and
:class:`~hessbench.experiments.registry.Measurement`) and ``valley_sgd`` (the valley-toy
dynamics the two ``wei_schwab_trace_*`` toy experiments share), ``zhu_lowrank_noise`` (the
Table 1 noises of Zhu et al. as low-rank factors) and ``zhu_escape_figure`` (the figure of
``zhu_sharp_minimum_escape``), which register nothing.

Add one line per experiment module (keep the list sorted):
``from hessbench.experiments import <module>  # noqa: F401``
"""
from hessbench.experiments import dinh_epsilon_sharpness  # noqa: F401
from hessbench.experiments import dinh_rescaling  # noqa: F401
from hessbench.experiments import dinh_weight_norm  # noqa: F401
from hessbench.experiments import example_line  # noqa: F401
from hessbench.experiments import sagun_batch_size  # noqa: F401
from hessbench.experiments import sagun_gauss_newton  # noqa: F401
from hessbench.experiments import sagun_logistic_bulk  # noqa: F401
from hessbench.experiments import sagun_outliers  # noqa: F401
from hessbench.experiments import sagun_width  # noqa: F401
from hessbench.experiments import wei_schwab_loss_excess  # noqa: F401
from hessbench.experiments import wei_schwab_negative  # noqa: F401
from hessbench.experiments import wei_schwab_noise_covariance  # noqa: F401
from hessbench.experiments import wei_schwab_trace_network  # noqa: F401
from hessbench.experiments import wei_schwab_trace_noise_structure  # noqa: F401
from hessbench.experiments import wei_schwab_trace_rate  # noqa: F401
from hessbench.experiments import zhu_anisotropic_escape  # noqa: F401
from hessbench.experiments import zhu_indicator_width  # noqa: F401
from hessbench.experiments import zhu_ou_escape_formula  # noqa: F401
from hessbench.experiments import zhu_sharp_minimum_escape  # noqa: F401
