"""What the benchmarks measure and with which settings: the settings every measurement
shares (block size, seeds, budgets) and the gate's figure specs (:data:`TRACK`,
:data:`RATIO`), read by :mod:`hessbench.bench.measure`, :mod:`hessbench.bench.gate`,
:mod:`hessbench.bench.report` and the asv suites (``suites/``).

A **track** figure is deterministic (a matvec count or a relative error, a function of
the seeds only); a **ratio** figure is hessbench's time over a reference time, both
sides measured interleaved in one process (:func:`hessbench.bench.timing.time_ratio`).
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BLOCK", "HEAVY", "HEAVY_BLOCK", "EIGSH_TOL", "TOP_K", "TRACE_SEEDS",
           "TRACE_BUDGET", "DENSITY_PROBES", "DENSITY_STEPS", "RATIO_MARGIN", "FLOAT32_TOL",
           "TIGHT_TOL", "STREAM_BATCHES", "STREAM_PARITY", "TrackSpec",
           "TRACK", "RatioSpec", "RATIO"]

BLOCK = 16               # vectors in a block HVP
HEAVY = {"resnet18"}     # workloads timed for products only (eigensolvers take minutes on a CPU)
HEAVY_BLOCK = 4          # vectors in a block HVP on a heavy workload
EIGSH_TOL = 1e-6         # hb.eigsh's residual tolerance in every benchmark
TOP_K = (1, 5, 20)       # numbers of top eigenvalues measured
TRACE_SEEDS = range(20)  # seeds of every Hutch++ RMSE figure
TRACE_BUDGET = 100       # hb.trace's default num_matvecs
DENSITY_PROBES = 8       # SLQ probes of hb.spectral_density
DENSITY_STEPS = 80       # Lanczos steps per SLQ probe
RATIO_MARGIN = 0.5       # a same-run time ratio may grow by 50 % before the gate fails
FLOAT32_TOL = 1e-6       # below the float32 MLP operator's noise floor (about 2e-5 |theta|max)
TIGHT_TOL = 1e-10        # a tolerance float64 products reach
STREAM_BATCHES = 10      # batches of the streamed products (10 x 100 samples on the MLP)
STREAM_PARITY = 1.1      # streamed HVP / PyHessian's target: parity within same-run noise


@dataclass(frozen=True)
class TrackSpec:
    """A deterministic figure: what it is, its unit, its float tolerance, whether it gates."""

    description: str
    unit: str
    rtol: float = 0.0
    atol: float = 0.0
    gated: bool = True


_ERR = {"unit": "rel. error", "rtol": 1e-3, "atol": 1e-9}  # float noise across BLAS builds
TRACK: dict[str, TrackSpec] = {
    **{f"mlp.eigsh_top{k}_matvecs": TrackSpec(
        f"hb.eigsh top-{k}, tol 1e-6, float64: matvecs", "matvecs") for k in TOP_K},
    **{f"mlp.eigsh_top{k}_rel_err": TrackSpec(
        f"hb.eigsh top-{k}, tol 1e-6, float64: max rel. error vs exact", **_ERR)
       for k in TOP_K},
    "mlp.trace_hutchpp_rmse_100": TrackSpec(
        f"Hutch++ {TRACE_BUDGET} matvecs: rel. RMSE over {len(TRACE_SEEDS)} seeds", **_ERR),
    "mlp.trace_hutchpp_matvecs_1pct": TrackSpec(
        "Hutch++: matvecs for 1% rel. RMSE (grid 3*round(2^(j/4)))", "matvecs"),
    "mlp.trace_hutchinson_matvecs_1pct": TrackSpec(
        "Hutchinson: matvecs for 1% rel. RMSE (closed form)", "matvecs"),
    "mlp.trace_hutchinson_rmse_100": TrackSpec(
        f"Hutchinson {TRACE_BUDGET} matvecs: rel. RMSE (closed form)", **_ERR),
    "mlp.density_w1": TrackSpec(
        f"SLQ {DENSITY_PROBES} probes x {DENSITY_STEPS} steps: W1 to exact spectrum / "
        "spectral width", **_ERR),
    "mlp.eigsh_f32_below_floor_converged": TrackSpec(
        "hb.eigsh top-5, float32, tol 1e-6 (below its noise floor): converged flag (must be 0)",
        "flag"),
    "mlp.eigsh_f32_noise_floor": TrackSpec(
        "hb.eigsh top-5, float32: attainable tolerance (noise floor / |theta|max)",
        "rel.", gated=False),
    "mlp.eigsh_f64_tight_unconverged": TrackSpec(
        "hb.eigsh top-5, float64, tol 1e-10: 1 - converged flag (must be 0)", "flag"),
    "mlp.eigsh_f64_tight_matvecs": TrackSpec("hb.eigsh top-5, float64, tol 1e-10: matvecs",
                                             "matvecs"),
    "mlp.eigsh_f64_tight_rel_err": TrackSpec(
        "hb.eigsh top-5, float64, tol 1e-10: max rel. error vs exact", **_ERR),
    "mlp.pyhessian_top5_hvps": TrackSpec(
        "PyHessian eigenvalues(top_n=5), tol 1e-3: HVPs", "HVPs", gated=False),
    "mlp.pyhessian_top5_rel_err": TrackSpec(
        "PyHessian eigenvalues(top_n=5): max rel. error vs exact", "rel. error", gated=False),
}


@dataclass(frozen=True)
class RatioSpec:
    """A same-run time ratio: what it is, and whether it gates (see :data:`RATIO`)."""

    description: str
    gated: bool = True


# The MLP's HVP (~15 ms) is bound by Python/dispatch overhead, its gradient and block
# products (~1-2 ms of matmuls per vector) by arithmetic; contention from other processes
# (shared cores, SMT siblings) slows only the latter, so on a loaded 2-core machine these
# two ratios move by ~2x between runs (2.7-15 and 0.20-0.36): shown, not gated. The
# gated ratios compare like with like and stay within ~15 %.
RATIO: dict[str, RatioSpec] = {
    "mlp.hvp_over_grad": RatioSpec("MLP: one HVP / one gradient", gated=False),
    "mlp.block_hvp_per_vector_over_hvp": RatioSpec(
        f"MLP: block HVP ({BLOCK} vectors) per vector / one HVP", gated=False),
    "mlp.hvp_over_pyhessian_hvp": RatioSpec("MLP: hessbench HVP / PyHessian HVP"),
    "mlp.eigsh_top5_over_pyhessian_top5": RatioSpec(
        "MLP: hb.eigsh top-5 (tol 1e-6) / PyHessian top-5 wall"),
    "mlp.streamed_hvp_over_pyhessian": RatioSpec(
        "MLP, list of 10 x 100: streamed HVP / PyHessian dataloader_hv_product"),
    "mlp.loader_hvp_over_pyhessian": RatioSpec(
        "MLP, DataLoader of 10 x 100: streamed HVP / PyHessian on the same loader"),
    "mlp.streamed_hvp_over_batch_grads": RatioSpec(
        "MLP, list of 10 x 100: streamed HVP / the 10 batch gradients", gated=False),
    "mlp.loader_hvp_over_batch_grads": RatioSpec(
        "MLP, DataLoader of 10 x 100: streamed HVP / the 10 batch gradients (same loader)",
        gated=False),
    "mlp.kept_list_hvp_over_batch_grads": RatioSpec(
        "MLP, list of 10 x 100, keep_graph=True: HVP / the 10 batch gradients", gated=False),
    # the floor of any product that rebuilds each batch's graph: above the 2.5x
    "mlp.double_backward_over_batch_grads": RatioSpec(
        "MLP, list of 10 x 100: plain double backward per batch / the 10 batch gradients",
        gated=False),
    "mlp.scratch_hvp_over_double_backward": RatioSpec(
        "MLP, one batch of 1000, keep_graph=False: HVP / plain double backward"),
    "cnn.hvp_over_grad": RatioSpec("small CNN: one HVP / one gradient"),
    "resnet18.hvp_over_grad": RatioSpec("ResNet-18: one HVP / one gradient"),
    "resnet18.hvp_over_pyhessian_hvp": RatioSpec("ResNet-18: hessbench HVP / PyHessian HVP"),
}
