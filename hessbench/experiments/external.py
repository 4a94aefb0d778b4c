"""Experiments from outside the package: installed entry points and named modules.

Two ways to register an experiment that does not live in ``hessbench/experiments/``:

* an installed package declares the entry point group ``hessbench.experiments``
  (``[project.entry-points."hessbench.experiments"] mine = "mypkg.experiments"``); every
  such module is imported once, the first time an experiment is looked up;
* ``--experiments MODULE`` (``pytest claims`` and ``hessbench claims|experiments ...``)
  imports ``MODULE``: a dotted module name (found from the current directory too) or a
  path to a ``.py`` file.

Either module registers its experiments with
:func:`~hessbench.experiments.registry.experiment` when imported.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
import warnings
from collections.abc import Iterable
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType

__all__ = ["ENTRY_POINT_GROUP", "ExperimentImportError", "import_experiments",
           "load_entry_points"]

ENTRY_POINT_GROUP = "hessbench.experiments"
_loaded = False


class ExperimentImportError(ImportError):
    """A module named by ``--experiments`` could not be imported."""


def import_experiments(modules: Iterable[str]) -> list[ModuleType]:
    """Import each of ``modules`` (dotted names or ``.py`` paths); their experiments are
    registered by the import. :class:`ExperimentImportError` naming the module otherwise."""
    return [_import_one(m) for m in modules]


def _import_one(spec: str) -> ModuleType:
    path = Path(spec)
    try:
        if spec.endswith(".py"):
            return _import_file(path)
        return _import_name(spec)
    except ExperimentImportError:
        raise
    except Exception as exc:  # the module's own error, e.g. a typo in it
        raise ExperimentImportError(f"--experiments {spec}: importing it failed: "
                                    f"{type(exc).__name__}: {exc}") from exc


def _import_file(path: Path) -> ModuleType:
    if not path.is_file():
        raise ExperimentImportError(f"--experiments {path}: no such file")
    name = path.stem
    module_spec = importlib.util.spec_from_file_location(name, path.resolve())
    if module_spec is None or module_spec.loader is None:
        raise ExperimentImportError(f"--experiments {path}: not a Python module")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _import_name(name: str) -> ModuleType:
    """``name`` imported; the current directory is searched too (as ``python -m`` does)."""
    cwd = str(Path.cwd())
    if importlib.util.find_spec(name.split(".")[0]) is None and cwd not in sys.path:
        sys.path.insert(0, cwd)
    if importlib.util.find_spec(name.split(".")[0]) is None:
        raise ExperimentImportError(f"--experiments {name}: no module named {name!r} on the "
                                    "Python path or in the current directory (give a dotted "
                                    "module name or a path to a .py file)")
    return importlib.import_module(name)


def load_entry_points(force: bool = False) -> list[str]:
    """Import every module of the ``hessbench.experiments`` entry point group, once per
    process (again with ``force``); returns their names. A module that fails to import is
    a warning naming the entry point, so one broken package does not stop the others."""
    global _loaded
    if _loaded and not force:
        return []
    _loaded = True
    names = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()
        except Exception as exc:
            warnings.warn(f"hessbench: entry point {ep.name} = {ep.value!r} (group "
                          f"{ENTRY_POINT_GROUP}) failed to import: {type(exc).__name__}: "
                          f"{exc}", RuntimeWarning, stacklevel=2)
            continue
        names.append(ep.name)
    return names
