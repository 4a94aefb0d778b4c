"""Claim files for the claims-engine tests, written into tmp dirs; they use the
built-in ``example_line`` experiment."""
from __future__ import annotations

from pathlib import Path

HEAD = '''id = "{id}"
title = "Demo line"
statement = "The fitted slope of a noisy line equals its true slope."
experiment = "{experiment}"
seeds = {seeds}
{head}
[source]
paper = "Example (2024), not a paper"
section = "0"
figure = "Fig. 0"
'''

SLOPE_OK = '''
[[expectations]]
name = "slope recovered"
metric = "slope_hat"
relation = "equals"
value = "{slope}"
abs_tol = 0.05
reason = "noise 0.01 on 11 points moves the fitted slope by about 0.01"
'''

SLOPE_BAD = '''
[[expectations]]
name = "slope is 10"
metric = "slope_hat"
relation = "equals"
value = 10
abs_tol = 0.5
reason = "a deliberately false claim to test failure reporting"
'''


def write_claim(directory: Path, claim_id: str = "demo", *, body: str = SLOPE_OK,
                sections: str = '[params]\nnoise = 0.01\n\n[grid]\nslope = [1.0, 2.0]\n',
                head: str = "", seeds: str = "[0, 1]", experiment: str = "example_line") -> Path:
    """Write ``directory/<claim_id>.toml``; ``sections`` are tables placed before ``body``."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{claim_id}.toml"
    path.write_text(HEAD.format(id=claim_id, experiment=experiment, seeds=seeds, head=head)
                    + "\n" + sections + "\n" + body)
    return path
