"""Progress reporting of long computations (eigsh, spectral_density, spectrum, dense builds).

Every such function takes ``progress``:

* ``None`` or ``False`` (default): nothing is reported;
* a callable ``progress(done, total)``: called with two ints after each unit of work
  (a product, a Lanczos step, a block of columns); ``done`` never decreases, and the
  last call has ``done == total``. ``total`` is the work planned so far: a function that
  stops early (``eigsh`` converging before its ``max_matvecs``) ends with
  ``(done, done)``;
* ``True``: a rich progress bar on stderr (it also works without a terminal, where rich
  prints no animation).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Union

__all__ = ["ProgressFn", "Progress", "reporter"]

ProgressFn = Callable[[int, int], None]
Progress = Union[ProgressFn, bool, None]


def _noop(done: int, total: int) -> None:
    """Report nothing."""


@contextmanager
def reporter(progress: Progress, description: str) -> Iterator[ProgressFn]:
    """A ``(done, total)`` callback for ``progress`` (see the module docstring), as a
    context that closes the progress bar of ``progress=True`` on exit."""
    if progress is None or progress is False:
        yield _noop
    elif progress is True:
        from rich.console import Console
        from rich.progress import Progress as Bar

        with Bar(console=Console(stderr=True), transient=False) as bar:
            task = bar.add_task(description, total=None)
            yield lambda done, total: bar.update(task, completed=done, total=total)
    elif callable(progress):
        yield progress
    else:
        raise TypeError(f"progress must be None, a bool or a callable (done, total), got "
                        f"{type(progress).__name__}")
