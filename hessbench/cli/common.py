"""Plumbing shared by the ``hessbench`` subcommand groups (:mod:`hessbench.cli.claims`,
:mod:`hessbench.cli.bench`): exit codes, the console, and a command group that prints its
help when called bare.

A module of its own so that group modules can use it without importing the top-level
parser (:mod:`hessbench.cli`) that imports them.
"""
from __future__ import annotations

import argparse
from typing import Any

__all__ = ["EXIT_OK", "EXIT_FAIL", "EXIT_USAGE", "make_console", "command_group",
           "add_experiments_option", "import_experiment_modules", "did_you_mean"]

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def make_console() -> Any:
    """A rich console: the terminal's width, ``COLUMNS`` when set, else 160 columns when
    piped (a folded 80-column table in a CI log is unreadable)."""
    import shutil

    from rich.console import Console

    return Console(highlight=False, width=shutil.get_terminal_size((160, 24)).columns)


def command_group(subparsers: Any, name: str, help: str, commands: str) -> Any:
    """Register ``hessbench <name>`` and return its sub-command registry; the group alone
    prints its help and exits with :data:`EXIT_USAGE`. ``commands`` is the metavar,
    e.g. ``"{list,run,report}"``."""
    group = subparsers.add_parser(name, help=help)

    def group_help(_args: argparse.Namespace) -> int:
        group.print_help()
        return EXIT_USAGE

    group.set_defaults(handler=group_help)
    return group.add_subparsers(dest=f"{name}_command", metavar=commands)


def add_experiments_option(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``--experiments MODULE`` (repeatable) to ``parser``; returns it."""
    from hessbench.claims.options import EXPERIMENTS_HELP

    parser.add_argument("--experiments", action="append", default=[], metavar="MODULE",
                        help=EXPERIMENTS_HELP)
    return parser


def import_experiment_modules(args: argparse.Namespace, console: Any) -> bool:
    """Import the ``--experiments`` modules of ``args``; False after printing the error."""
    if not args.experiments:
        return True
    from rich.markup import escape

    from hessbench.experiments.external import ExperimentImportError, import_experiments

    try:
        import_experiments(args.experiments)
    except ExperimentImportError as exc:
        console.print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True)
        return False
    return True


def did_you_mean(names: list[str], known: list[str]) -> str:
    """``"; did you mean 'demo'?"`` for the close matches (difflib) of ``names`` among
    ``known``; empty when there are none."""
    import difflib

    close = [m for n in names for m in difflib.get_close_matches(n, known, n=1)]
    return f"; did you mean {', '.join(close)}?" if close else ""
