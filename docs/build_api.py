"""Build the API reference from the docstrings into ``docs/api`` with pdoc, every module
of the package (``hessbench.__all__`` would otherwise hide the submodules from a plain
``pdoc hessbench``); exit 1 when pdoc warns (the CI check).

    .venv/bin/pip install -e '.[docs]'
    .venv/bin/python docs/build_api.py [OUT_DIR]
"""
from __future__ import annotations

import importlib
import pkgutil
import sys
import warnings
from pathlib import Path


def modules() -> list[str]:
    """Every module of ``hessbench`` but ``__main__`` ones, less those pdoc adds itself (a
    package's submodules, or those its ``__all__`` names), so that none is given twice."""
    import hessbench

    walked = pkgutil.walk_packages(hessbench.__path__, "hessbench.")
    names = ["hessbench", *sorted(m.name for m in walked if not m.name.endswith("__main__"))]
    added = set()
    for name in names:
        module = importlib.import_module(name)
        if hasattr(module, "__path__"):
            shown = getattr(module, "__all__", None)
            added |= {m.name for m in pkgutil.iter_modules(module.__path__, f"{name}.")
                      if shown is None or m.name.rsplit(".", 1)[1] in shown}
    return [n for n in names if n not in added]


def main(argv: list[str]) -> int:
    import pdoc
    import pdoc.render

    out = Path(argv[0]) if argv else Path(__file__).parent / "api"
    pdoc.render.configure(docformat="restructuredtext", footer_text="hessbench",
                            show_source=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pdoc.pdoc(*modules(), output_directory=out)
    for w in caught:
        print(f"warning: {w.category.__name__}: {w.message}", file=sys.stderr)
    print(f"{len(modules())} modules -> {out}" + (f"; {len(caught)} warning(s)" if caught else ""))
    return 1 if caught else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
