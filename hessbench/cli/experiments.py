"""``hessbench experiments list|show NAME``: the registered experiments, their params
(with defaults) and metrics, those of ``--experiments MODULE`` and of the entry point
group ``hessbench.experiments`` included."""
from __future__ import annotations

import argparse
import inspect
import sys
import textwrap
from typing import Any

from hessbench.cli.common import (EXIT_OK, EXIT_USAGE, add_experiments_option, command_group,
                                  did_you_mean, import_experiment_modules, make_console)

__all__ = ["add_parser"]

UNDECLARED = "(not declared)"


def _where(exp: Any) -> str:
    """``module (file)`` of the experiment's function."""
    module = exp.func.__module__
    path = getattr(sys.modules.get(module), "__file__", None)
    return f"{module} ({path})" if path else module


def _params(exp: Any, sep: str) -> str:
    if exp.defaults is None:
        return UNDECLARED
    return sep.join(f"{k} = {v!r}" for k, v in exp.defaults.items())


def _metrics(exp: Any, sep: str) -> str:
    return UNDECLARED if exp.metrics is None else sep.join(sorted(exp.metrics))


def _registry(args: argparse.Namespace, console: Any) -> dict[str, Any] | None:
    from hessbench.experiments.registry import all_experiments

    return all_experiments() if import_experiment_modules(args, console) else None


def _list(args: argparse.Namespace) -> int:
    from rich.table import Table

    console = make_console()
    experiments = _registry(args, console)
    if experiments is None:
        return EXIT_USAGE
    table = Table(title="registered experiments", title_justify="left")
    for col in ("name", "params (defaults)", "metrics", "module"):
        table.add_column(col, overflow="fold")
    for name, exp in experiments.items():
        table.add_row(name, _params(exp, "\n"), _metrics(exp, ", "), exp.func.__module__)
    console.print(table)
    return EXIT_OK


def _show(args: argparse.Namespace) -> int:
    console = make_console()
    experiments = _registry(args, console)
    if experiments is None:
        return EXIT_USAGE
    exp = experiments.get(args.name)
    if exp is None:
        known = list(experiments)
        console.print(f"[red]error:[/] unknown experiment {args.name!r}; registered: "
                      f"{', '.join(known) or '(none)'}{did_you_mean([args.name], known)}",
                      soft_wrap=True)
        return EXIT_USAGE
    doc = inspect.getdoc(exp.func) or "(no docstring)"
    lines = [f"experiment {exp.name}", f"  defined in: {_where(exp)}",
             textwrap.indent(doc, "  "),
             f"  figure: {'yes' if exp.figure is not None else 'no'}",
             "  params (defaults):" + ("" if exp.defaults else f" {UNDECLARED}")]
    lines += [f"    {k} = {v!r}" for k, v in (exp.defaults or {}).items()]
    lines.append(f"  metrics: {_metrics(exp, ', ')}")
    console.print("\n".join(lines), markup=False, soft_wrap=True)
    return EXIT_OK


def add_parser(subparsers: Any) -> None:
    """Register ``hessbench experiments`` and its commands ``list`` and ``show``."""
    sub = command_group(subparsers, "experiments", "list and show the registered "
                        "experiments", "{list,show}")
    add_experiments_option(sub.add_parser(
        "list", help="every experiment with its params (defaults) and metrics")
    ).set_defaults(handler=_list)
    show = add_experiments_option(sub.add_parser(
        "show", help="one experiment: where it is defined, its docstring, params, metrics"))
    show.add_argument("name", metavar="NAME", help="a registered experiment name")
    show.set_defaults(handler=_show)
