"""Claim files for the claims-engine tests, written into tmp dirs; they use the
built-in ``example_line`` experiment."""
from __future__ import annotations

from pathlib import Path

import pytest

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


SLOPE_POSITIVE = '''
[[expectations]]
name = "slope positive"
metric = "slope_hat"
relation = "greater_than"
value = 0
reason = "the line rises (the effect a control removes)"
'''

#: Passes: with slopes -1 and -2 the slope is not positive, as predicted.
CONTROL_FALLING = '''
[[controls]]
name = "falling"
grid = { slope = [-1.0, -2.0] }
expect_fail = ["slope positive"]
reason = "Example (2024), Sec. 0: a falling line has no positive slope"
'''

#: Fails: with slope 3 the slope is still positive, the claim's test passes without its effect.
CONTROL_STEEPER = '''
[[controls]]
name = "steeper"
grid = { slope = [3.0] }
expect_fail = ["slope positive"]
reason = "Example (2024), Sec. 0: a deliberately wrong control, for the test"
'''


def write_claim(directory: Path, claim_id: str = "demo", *, body: str = SLOPE_OK,
                sections: str = '[params]\nnoise = 0.01\n\n[grid]\nslope = [1.0, 2.0]\n',
                head: str = "", seeds: str = "[0, 1]", experiment: str = "example_line",
                no_control: str | None = "engine test", controls: str = "") -> Path:
    """Write ``directory/<claim_id>.toml``; ``sections`` are tables placed before ``body``,
    ``controls`` (``[[controls]]`` tables) after it; ``no_control`` (None: no such key)
    goes with the top-level keys."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{claim_id}.toml"
    if no_control is not None:
        head += f'no_control = "{no_control}"\n'
    path.write_text(HEAD.format(id=claim_id, experiment=experiment, seeds=seeds, head=head)
                    + "\n" + sections + "\n" + body + controls)
    return path


def write_controlled(directory: Path, claim_id: str = "demo", *,
                     controls: str = CONTROL_FALLING, body: str = SLOPE_POSITIVE,
                     no_control: str | None = None, **kw: str) -> Path:
    """By default the claim "the slope is positive" on slopes 1 and 2 with ``controls``
    and no ``no_control``."""
    return write_claim(directory, claim_id, body=body, no_control=no_control,
                       controls=controls, **kw)


def run_pytest(pytester: pytest.Pytester, *args: str, **kw: bool) -> pytest.RunResult:
    """In-process pytest run; the engine is already imported here, which pytest's
    assertion rewriting of plugin packages warns about (only in such nested runs)."""
    return pytester.runpytest("-p", "no:cacheprovider", "-W",
                              "ignore::pytest.PytestAssertRewriteWarning", *args, **kw)
