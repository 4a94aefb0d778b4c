"""``-k`` and ``-m`` for ``hessbench claims run``, as ``pytest claims`` reads them.

The grammar (``and``, ``or``, ``not``, parentheses) is pytest's own (its expression
parser), so an expression selects the same items under both commands:

* ``-k EXPR``: each word matches, case-insensitively, a substring of one of the item's
  keywords: its id (``demo[slope=1.0]``), its file name (``demo.toml``), the claims
  folder's name, its experiment and its markers (as pytest's ``-k`` does);
* ``-m EXPR``: each word is a marker name: ``claim`` (every item), ``gpu`` and ``slow``
  (items of a profile with ``gpu = true``), so ``-m "not gpu"`` selects the items of the
  paper profile that fit a CPU.
"""
from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from functools import cached_property

__all__ = ["Selection", "markers"]


def markers(gpu: bool) -> tuple[str, ...]:
    """The markers of an item (the plugin adds the same): ``claim``, plus ``gpu`` and
    ``slow`` under a GPU profile."""
    return ("claim", "gpu", "slow") if gpu else ("claim",)


def _compile(option: str, expression: str) -> Callable[[Callable[[str], bool]], bool]:
    """pytest's parser for ``expression``; ``ValueError`` naming the option when it is
    malformed."""
    from _pytest.mark.expression import Expression   # the parser of pytest's -k and -m

    try:
        compiled = Expression.compile(expression)
    except SyntaxError as exc:
        raise ValueError(f"{option} {expression!r}: {exc.msg} (at column {exc.offset}); "
                         "write words joined by and / or / not, as for pytest") from None
    return lambda matcher: compiled.evaluate(lambda name, **_kw: matcher(name))


@dataclass(frozen=True)
class Selection:
    """The ``-k`` / ``-m`` expressions of a run (None: no such option)."""

    keyword: str | None = None
    marker: str | None = None

    def __post_init__(self) -> None:
        self._tests   # a malformed expression fails at once

    @cached_property
    def _tests(self) -> tuple:
        """The compiled -k and -m expressions (None where not given), compiled once."""
        return tuple(None if expression is None else _compile(option, expression)
                     for option, expression in (("-k", self.keyword), ("-m", self.marker)))

    def matches(self, keywords: Collection[str], item_markers: Collection[str]) -> bool:
        """Whether an item with these keywords and markers is selected."""
        keyword, marker = self._tests
        words = [k.lower() for k in keywords]
        if keyword is not None and not keyword(lambda w: any(w.lower() in k for k in words)):
            return False
        return marker is None or marker(lambda w: w in item_markers)

    def describe(self) -> str:
        """``-k 'expr' -m 'expr'`` (the options given), for messages."""
        return " ".join(f"{opt} {expr!r}" for opt, expr in (("-k", self.keyword),
                                                            ("-m", self.marker)) if expr)
