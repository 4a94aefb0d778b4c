"""Run one claim at a profile for chosen seeds only, and print its verdicts and metrics.

Evidence runs for a claim file's history (e.g. one seed of a `paper` profile on a CPU);
not a replacement for `pytest claims`, which always runs the declared seeds.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/run_claim_seeds.py CLAIM_ID PROFILE SEED [SEED ...]
"""
from __future__ import annotations

import dataclasses
import json
import sys
import time

import torch

from hessbench.claims.runner import run_item
from hessbench.claims.spec import load_claim


def main(claim_id: str, profile: str, seeds: list[int]) -> int:
    claim = load_claim(f"claims/{claim_id}.toml")
    setup = dataclasses.replace(claim.setup(profile), seeds=tuple(seeds))
    start = time.time()
    for point in setup.points():
        result = run_item(claim, setup, point, torch.device("cpu"))
        print(point.id or "(no grid)", result.status, f"{result.seconds:.0f} s")
        if result.error:
            print(result.error)
        for verdict in result.verdicts:
            print(" ", verdict.message)
        for record in result.records:
            print(json.dumps(record.metrics, default=str))
    print(f"total {time.time() - start:.0f} s")
    return 0


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2], [int(s) for s in sys.argv[3:]]))
