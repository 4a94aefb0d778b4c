"""Diagnostics (not the verdict) for the wei-schwab-negative-eigenvalues protocol.

Reproduces the experiment's GD minimum and SGD trajectories (same seeds, same eval
spacing) and measures, per (batch size, lr) pair:

* equilibration: mean and batch-means standard error of the full-batch loss on the first
  and second half of the averaging window, their difference in standard errors, the
  least-squares slope of loss vs SGD time over the window, and window means of an
  extended run (same SGD stream continued to ``--extend`` time units);
* pairing of x and y: loss of the end iterate (where the spectrum is taken) against the
  window mean (the x of the fit), in units of the window's per-evaluation standard deviation;
* optionally (``--snapshots K``) the exact spectrum's negative mass at K iterates spread
  over the window, to size the snapshot-to-snapshot noise of y;

and, for the GD minimum theta_0: the gradient norm, and the loss decrease of GD continued
from theta_0 for the same SGD time (is theta_0 a minimum on the scale of the SGD losses?).

Usage: OMP_NUM_THREADS=1 .venv/bin/python scripts/diagnose_wei_schwab_negative.py [--profile smoke]
The diagnostics in the claim file's history (SGD time 100) come from
  ... --equilibration-time 100 --snapshots 4 --snapshot-pairs 0,1,5,7
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import time

import numpy as np
import torch
from torch import nn

import hessbench as hb
from hessbench import stats
from hessbench.claims.spec import load_claim
from hessbench.data import digits
from hessbench.experiments import wei_schwab_negative as wsn
from hessbench.experiments.registry import with_defaults
from hessbench.minimize import grad_norm
from hessbench.models import mlp
from hessbench.training import full_loss, train


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", default="smoke")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--equilibration-time", type=float, default=None,
                    help="override the profile's SGD time per pair")
    ap.add_argument("--extend", type=float, default=400.0, help="SGD time of the extended run")
    ap.add_argument("--snapshots", type=int, default=0)
    ap.add_argument("--snapshot-pairs", default="0,5", help="pair indices for --snapshots")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    claim = load_claim("claims/wei-schwab-negative-eigenvalues.toml")
    p = dict(claim.setup(args.profile).params)
    if args.equilibration_time is not None:
        p["equilibration_time"] = args.equilibration_time
    p = with_defaults("wei_schwab_negative", wsn.DEFAULTS, p)
    wsn._check_params(p)
    dtype, seed = torch.float64, args.seed
    inputs, targets = digits(int(p["num_samples"]), seed=seed, dtype=dtype)
    model = mlp(wsn.IN_DIM, [int(p["hidden"])], wsn.NUM_CLASSES, seed=seed, dtype=dtype)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=float(p["label_smoothing"]))
    t0 = time.perf_counter()
    gd = train(model, loss_fn, inputs, targets, lr=float(p["gd_lr"]), steps=int(p["gd_steps"]),
               eval_every=max(1, int(p["gd_steps"]) // 10))
    out: dict = {"gd_final_loss": gd.final_loss,
                 "gd_grad_norm": grad_norm(model, loss_fn, inputs, targets)[1]}
    t_eq, gd_lr = float(p["equilibration_time"]), float(p["gd_lr"])
    gd_floor = train(copy.deepcopy(model), loss_fn, inputs, targets, lr=gd_lr,
                     steps=wsn.equilibration_steps(args.extend, gd_lr),
                     eval_every=max(1, round(1.0 / gd_lr)))  # GD continued, one eval per time unit
    floor_t = np.asarray(gd_floor.losses) - gd.final_loss      # at t = 0, 1, 2, ...
    out["gd_continued_drop_per_eq_time"] = [float(floor_t[0] - floor_t[int(t_eq)])] + [
        float(floor_t[int(k * t_eq)] - floor_t[int((k + 1) * t_eq)])
        for k in range(1, int(args.extend // t_eq))]
    out["gd_seconds"] = time.perf_counter() - t0
    print(json.dumps(out, indent=1))

    frac, n_evals = float(p["average_fraction"]), int(p["num_evals"])
    snap_pairs = {int(i) for i in args.snapshot_pairs.split(",") if i}
    rows = []
    for i, (bs, lr) in enumerate(zip(p["batch_sizes"], p["learning_rates"])):
        lr, bs = float(lr), int(bs)
        steps = wsn.equilibration_steps(t_eq, lr)
        every = max(1, steps // n_evals)
        sgd_model = copy.deepcopy(model)
        run = train(sgd_model, loss_fn, inputs, targets, lr=lr, steps=steps, batch_size=bs,
                    seed=wsn._pair_seed(seed, i), eval_every=every)
        evals = np.asarray(run.losses[1:]) - gd.final_loss
        window = wsn.averaging_window(evals, frac)
        half = window.size // 2
        m1, se1 = float(window[:half].mean()), wsn.batch_means_se(window[:half])
        m2, se2 = float(window[half:].mean()), wsn.batch_means_se(window[half:])
        times = lr * every * (np.arange(len(evals)) + 1)
        tw = times[-window.size:]
        slope = stats.linear_fit(tw, window, min_points=2).slope
        mean = float(window.mean())
        sd = float(window.std(ddof=1))
        end = full_loss(sgd_model, loss_fn, inputs, targets) - gd.final_loss
        row = {"pair": i, "batch": bs, "lr": lr, "window_mean": mean, "window_sd": sd,
               "first_half": [m1, se1], "second_half": [m2, se2],
               "half_diff_in_se": (m1 - m2) / math.hypot(se1, se2),
               "slope_per_time": slope,
               "slope_x_window_over_mean": slope * (tw[-1] - tw[0]) / mean,
               "end_loss": end, "end_minus_mean_in_sd": (end - mean) / sd}
        # extended run: the same stream continued (a different pair seed would not be "the same run")
        ext_steps = wsn.equilibration_steps(args.extend, lr) - steps
        if ext_steps > 0:
            more = train(copy.deepcopy(sgd_model), loss_fn, inputs, targets, lr=lr, steps=ext_steps,
                         batch_size=bs, seed=wsn._pair_seed(seed, 1000 + i), eval_every=every)
            all_evals = np.concatenate([evals, np.asarray(more.losses[1:]) - gd.final_loss])
            n_per = round(t_eq / (lr * every))  # evals per eq-time block
            n_blocks = max(1, len(all_evals) // n_per)
            row["block_means_per_eq_time"] = [float(b.mean()) for b in
                                              np.array_split(all_evals, n_blocks)]
            # the same, measured from the GD trajectory at the same SGD time (moving floor)
            t_all = lr * every * (np.arange(len(all_evals)) + 1)
            floor = np.interp(t_all, np.arange(len(floor_t)), floor_t)
            row["block_means_above_gd_floor"] = [float(b.mean()) for b in
                                                 np.array_split(all_evals - floor, n_blocks)]
        if args.snapshots and i in snap_pairs:
            # an independent stream: burn in for t_eq, then K spectra spaced over the next t_eq
            snap_model = copy.deepcopy(model)
            train(snap_model, loss_fn, inputs, targets, lr=lr, steps=steps, batch_size=bs,
                  seed=wsn._pair_seed(seed, 2000 + i), eval_every=10**9)
            snaps = []
            for k in range(args.snapshots):
                t1 = time.perf_counter()
                train(snap_model, loss_fn, inputs, targets, lr=lr, steps=steps // args.snapshots,
                      batch_size=bs, seed=wsn._pair_seed(seed, 3000 + 100 * i + k), eval_every=10**9)
                ev = hb.spectrum(wsn.exact_hessian(snap_model, loss_fn, inputs, targets))
                t_snap = lr * (steps + (k + 1) * (steps // args.snapshots))
                snaps.append({"time": t_snap,
                              "loss": full_loss(snap_model, loss_fn, inputs, targets) - gd.final_loss,
                              "floor": float(np.interp(t_snap, np.arange(len(floor_t)), floor_t)),
                              "neg_sum": wsn.spectrum_sums(ev).neg_sum,
                              "seconds": time.perf_counter() - t1})
            negs = np.array([q["neg_sum"] for q in snaps])
            losses = np.array([q["loss"] for q in snaps])
            row["snapshots"] = snaps
            row["snapshot_cv"] = {"loss": float(losses.std(ddof=1) / abs(losses.mean())),
                                  "neg_sum": float(negs.std(ddof=1) / abs(negs.mean()))}
        rows.append(row)
        print(json.dumps(row))
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"gd": out, "pairs": rows}, f, indent=1)


if __name__ == "__main__":
    main()
