"""Plumbing shared by the ``hessbench`` subcommand groups (:mod:`hessbench.cli.claims`,
:mod:`hessbench.cli.bench`): exit codes, the console, and a command group that prints its
help when called bare.

A module of its own so that group modules can use it without importing the top-level
parser (:mod:`hessbench.cli`) that imports them.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["EXIT_OK", "EXIT_FAIL", "EXIT_USAGE", "make_console", "command_group"]

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def make_console() -> Any:
    """A rich console, 160 columns wide when piped (a folded 80-column table in a CI log
    is unreadable)."""
    from rich.console import Console

    return Console(highlight=False, width=None if sys.stdout.isatty() else 160)


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
