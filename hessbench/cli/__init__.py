"""The ``hessbench`` command line.

* ``hessbench claims list|run|report|compare`` -- the claims engine, the same runner as
  ``pytest claims`` (:mod:`hessbench.cli.claims`); ``claims run`` exits 0 when every
  item passed, 1 on any failure or error, 2 on a usage or claim validation error.
* ``hessbench bench compare|gate|table`` -- the benchmark tooling
  (:mod:`hessbench.cli.bench`).
* ``hessbench experiments list|show NAME`` -- the registered experiments, their params
  and metrics (:mod:`hessbench.cli.experiments`).
* ``hessbench --version``.

A subcommand group is a module with ``add_parser(subparsers)``, which calls
``subparsers.add_parser(...)`` (or :func:`hessbench.cli.common.command_group`) and
``parser.set_defaults(handler=fn)`` with ``fn(args) -> exit code``; it is listed in
:data:`SUBCOMMANDS`.
"""
from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any

from hessbench.cli import bench, claims, experiments
from hessbench.cli.common import EXIT_USAGE

__all__ = ["main", "build_parser", "SUBCOMMANDS"]

SUBCOMMANDS: list[Callable[[Any], None]] = [claims.add_parser, experiments.add_parser,
                                            bench.add_parser]


def build_parser() -> argparse.ArgumentParser:
    """The ``hessbench`` parser with every group of :data:`SUBCOMMANDS`."""
    parser = argparse.ArgumentParser(prog="hessbench", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"hessbench {_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(subparsers)
    return parser


def _version() -> str:
    """The installed distribution's version (no torch import, unlike ``hessbench``)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("hessbench")
    except PackageNotFoundError:
        return "unknown (not installed)"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hessbench`` console script; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return int(exc.code or 0)
    if not hasattr(args, "handler"):
        parser.print_help()
        return EXIT_USAGE
    return int(args.handler(args))
