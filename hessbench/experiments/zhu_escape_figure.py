"""The figure of ``zhu_sharp_minimum_escape``: Zhu et al. (ICML 2019) Fig. 3 and Fig. 5.

Top row (Fig. 3 / Fig. 8): training and test accuracy against iteration from theta*_GD
(the dashed line, as in the paper), one colour per dynamic, one line style per seed; the
expected sharpness at theta* and at the end. Bottom row (Fig. 5): the top Hessian
eigenvalues over lambda_1 with the 1% line and the scaled rank r, Tr(H Sigma_sgd) against
Tr(H Sigma_iso) per seed, and what the claim asserts: training-accuracy drop against
test-accuracy gain per dynamic and seed, the paper's escaping dynamics filled.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from hessbench.noise import TABLE1_KINDS

LABELS = {"gd": "GD", "sgd": "SGD", "gld_const": "GLD const", "gld_dynamic": "GLD dynamic",
          "gld_diag": "GLD diag", "gld_leading": "GLD leading", "gld_hessian": "GLD Hessian",
          "gld_1st_eigvec": "GLD 1st eigvec(H)"}
COLOURS = dict(zip(TABLE1_KINDS, ("k", "tab:red", "tab:gray", "tab:olive", "tab:brown",
                                  "tab:green", "tab:purple", "tab:blue")))
STYLES = ("-", "--", ":", "-.")
PAPER_ESCAPING = ("sgd", "gld_leading", "gld_hessian", "gld_1st_eigvec")


def plot_sharp_minimum_escape(records: list[dict[str, Any]]) -> Any:
    """Fig. 3 (accuracies, sharpness) and Fig. 5 (spectrum, indicators) from the records."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(15, 8.5), layout="constrained")
    (a_tr, a_te, a_sh), (a_ev, a_ind, a_sum) = fig.subplots(2, 3)
    structure = records[0]["figure_data"]["noise_structure"] if records else "table1"
    for i, rec in enumerate(records):
        fd, m, ls = rec["figure_data"], rec["metrics"], STYLES[i % len(STYLES)]
        start = fd["gd_steps"]
        for kind, curve in fd["curves"].items():
            steps = start + np.asarray(curve["step"])
            label = LABELS[kind] if i == 0 else None
            a_tr.plot(steps, curve["train"], ls, color=COLOURS[kind], lw=1, label=label)
            a_te.plot(steps, curve["test"], ls, color=COLOURS[kind], lw=1, label=label)
            drop, gain = m[f"train_accuracy_drop_{kind}"], m[f"test_accuracy_gain_{kind}"]
            a_sum.scatter(gain, drop, color=COLOURS[kind], marker="os^D"[i % 4],
                          facecolors=COLOURS[kind] if kind in PAPER_ESCAPING else "none",
                          label=f"{LABELS[kind]}" if i == 0 else None)
        kinds = list(fd["curves"])
        pos = np.arange(len(kinds) + 1) + 0.15 * i
        a_sh.bar(pos, [m["expected_sharpness_at_minimum"]]
                 + [m[f"expected_sharpness_{k}"] for k in kinds], width=0.15,
                 color=["w"] + [COLOURS[k] for k in kinds], edgecolor="k",
                 label=f"seed {rec['seed']}")
        a_sh.set_xticks(np.arange(len(kinds) + 1), ["theta*_GD"] + [LABELS[k] for k in kinds],
                        rotation=35, ha="right", fontsize=7)
        ev = np.asarray(m["top_eigenvalues"])
        a_ev.plot(np.arange(1, ev.size + 1), ev / ev[0], ls, color="tab:blue",
                  label=f"seed {rec['seed']} (D = {m['num_params']})")
        a_ev.axvline(fd["rank"], color="tab:red", lw=0.8)
        a_ind.bar([2 * i, 2 * i + 0.8], [m["tr_h_sigma_sgd"], m["tr_h_sigma_iso"]], width=0.8,
                  color=["tab:red", "tab:blue"],
                  label=[r"Tr($H\Sigma_{sgd}$)", r"Tr($H\bar\Sigma$), isotropic"] if i == 0
                  else None)
        a_ind.text(2 * i + 0.4, m["tr_h_sigma_sgd"], f"ratio {m['indicator_ratio']:.3g}",
                   ha="center", va="bottom", fontsize=7)
    for ax, what in ((a_tr, "training"), (a_te, "test")):
        ax.axvline(records[0]["figure_data"]["gd_steps"] if records else 0, color="k", ls="--",
                   lw=0.8)
        ax.set_xlabel("iteration (GD to theta*_GD, then the dynamic)")
        ax.set_ylabel(f"{what} accuracy")
        ax.set_title(f"Zhu et al. Fig. 3 ({what}); line style = seed", fontsize=9)
    a_tr.legend(fontsize=7)
    a_sh.set_xlabel("point (theta*_GD, then the end of each dynamic)")
    a_sh.set_ylabel("expected sharpness E L(theta + nu) - L(theta)")
    a_sh.set_title("Fig. 3 (right): expected sharpness at theta* and at the end", fontsize=9)
    a_sh.legend(fontsize=7)
    a_ev.axhline(0.01, color="k", ls=":", lw=0.8, label="1% of lambda_1 (paper: at rank 140)")
    a_ev.set_yscale("log", nonpositive="mask")
    a_ev.set_xlabel("rank i (red: r = 140 D / 11330)")
    a_ev.set_ylabel("lambda_i / lambda_1 at theta*_GD")
    a_ev.set_title("Zhu et al. Fig. 5 (left): top Hessian eigenvalues", fontsize=9)
    a_ev.legend(fontsize=7)
    a_ind.set_yscale("log")
    a_ind.set_xticks([2 * i + 0.4 for i in range(len(records))],
                     [f"seed {r['seed']}" for r in records])
    a_ind.set_xlabel("seed (red: SGD noise, blue: isotropic of the same trace)")
    a_ind.set_ylabel("escape indicator at theta*_GD")
    a_ind.set_title("Fig. 5 (right): SGD noise vs isotropic noise of equal trace", fontsize=9)
    a_ind.legend(fontsize=7)
    a_sum.axhline(0.02, color="k", ls=":", lw=0.8)
    a_sum.axvline(0.01, color="k", ls=":", lw=0.8)
    a_sum.set_xlabel("test-accuracy gain from theta*")
    a_sum.set_ylabel("training-accuracy drop from theta* (escape)")
    a_sum.set_title("asserted: filled (paper: escape) above / right of the dotted lines",
                    fontsize=9)
    a_sum.legend(fontsize=7)
    fig.suptitle("Zhu et al. (ICML 2019) Fig. 3 and Fig. 5 on digits with random labels "
                 f"(noise structure: {structure})", fontsize=10)
    return fig
