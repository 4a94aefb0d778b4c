"""Streamed and from-scratch HVP cost ratios on the MLP workload (4270 params, 10 x 100
samples), each side timed interleaved in one process (hessbench.bench.timing.time_ratio;
min and median of ``--repeats`` samples of >= 20 ms), 1 thread:

* streamed HVP (a list / a DataLoader) / the 10 batch gradients on the same data source,
  and / PyHessian's ``dataloader_hv_product`` on the same data;
* plain double backward per batch (module forward, autograd) / the 10 batch gradients;
* ``keep_graph=True`` on the list / the 10 batch gradients;
* forward-over-reverse by plain autograd (the parameters as forward-mode dual tensors
  through one backward pass per batch) / the 10 batch gradients: the other textbook
  HVP that rebuilds its graph;
* the from-scratch HVP on the whole set (``keep_graph=False``) / plain double backward.

Run it against another source tree (before / after) with
``PYTHONPATH=<tree> .venv/bin/python benchmarks/streamed_hvp.py``: the tree needs
``hessbench.bench.workloads.double_backward_fn`` (from 5f41b02 on; for an older core,
copy today's ``hessbench/bench`` into it); ``keep_graph=True`` rows are skipped where the
tree refuses it for several batches.
"""
from __future__ import annotations

import argparse
import os
import warnings

import torch
import torch.autograd.forward_ad as fwAD
from torch.func import functional_call
from torch.utils.data import DataLoader, TensorDataset

import hessbench as hb
from hessbench.bench.impls import hvp_fn
from hessbench.bench.peers import pyhessian_hessian, pyhessian_hvp_fn
from hessbench.bench.timing import time_ratio
from hessbench.bench.workloads import double_backward_fn, get_workload, gradient_fn
from hessbench.problem import trainable_parameters


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    w = get_workload("mlp")
    params = list(trainable_parameters(w.model).values())
    listed = w.data(100)
    loader = DataLoader(TensorDataset(w.inputs, w.targets), batch_size=100)
    v = [torch.randn(p.shape, generator=torch.Generator().manual_seed(0)) for p in params]

    def forward_over_reverse(data):
        names = [k for k, p in w.model.named_parameters() if p.requires_grad]
        leaves = [p.detach().requires_grad_(True) for p in params]

        def run():
            with fwAD.dual_level():
                duals = [fwAD.make_dual(p, t) for p, t in zip(leaves, v)]
                tree = dict(zip(names, duals))
                out = []
                for x, y in data:   # the tangent of each batch gradient is H_b v
                    g = torch.autograd.grad(w.loss_fn(functional_call(w.model, tree, (x,)), y),
                                            duals)
                    out.append([fwAD.unpack_dual(t).tangent for t in g])
                return out
        return run

    from pyhessian import hessian
    import copy
    pyh_loader = hessian(copy.deepcopy(w.model), w.loss_fn, dataloader=loader, cuda=False)
    cases = {
        "list HVP / 10 batch gradients": (hvp_fn(hb.hessian(w.model, w.loss_fn, listed)),
                                          gradient_fn(w, listed)),
        "DataLoader HVP / 10 batch gradients (list)": (
            hvp_fn(hb.hessian(w.model, w.loss_fn, loader)), gradient_fn(w, listed)),
        "DataLoader HVP / 10 batch gradients (loader)": (
            hvp_fn(hb.hessian(w.model, w.loss_fn, loader)), gradient_fn(w, loader)),
        "PyHessian list / 10 batch gradients": (
            pyhessian_hvp_fn(pyhessian_hessian(w, 100)), gradient_fn(w, listed)),
        "double backward / 10 batch gradients": (double_backward_fn(w, listed), gradient_fn(w, listed)),
        "forward-over-reverse / 10 batch gradients": (forward_over_reverse(listed),
                                                      gradient_fn(w, listed)),
        "list HVP / PyHessian (list)": (hvp_fn(hb.hessian(w.model, w.loss_fn, listed)),
                                        pyhessian_hvp_fn(pyhessian_hessian(w, 100))),
        "DataLoader HVP / PyHessian (loader)": (
            hvp_fn(hb.hessian(w.model, w.loss_fn, loader)), pyhessian_hvp_fn(pyh_loader)),
        "from scratch, 1 batch of 1000 / double backward": (
            hvp_fn(w.hessian(keep_graph=False)), double_backward_fn(w)),
    }
    try:
        cases["keep_graph=True list / 10 batch gradients"] = (
            hvp_fn(hb.hessian(w.model, w.loss_fn, listed, keep_graph=True)), gradient_fn(w, listed))
    except ValueError:
        pass
    print(f"hessbench from {os.path.dirname(hb.__file__)}; load {os.getloadavg()[0]:.2f}")
    for label, (num, den) in cases.items():
        lo, a, b = time_ratio(num, den, repeats=args.repeats, stat="min")
        med = a.median / b.median
        print(f"{label:48s} min {lo:5.2f}  median {med:5.2f}  ({a.min * 1e3:.2f} / "
              f"{b.min * 1e3:.2f} ms)")
    print(f"load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
