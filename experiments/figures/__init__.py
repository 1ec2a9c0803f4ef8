"""Figures and tables of the papers, one module each (see experiments/figures/context.py for
the module contract). Modules named `figNN_*` and `tabNN_*` are discovered automatically and
reported in name order."""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType


def figure_modules() -> dict[str, ModuleType]:
    """NAME -> module for every figure/table module of this package, in name order."""
    names = sorted(
        m.name for m in pkgutil.iter_modules(__path__) if m.name.startswith(("fig", "tab"))
    )
    modules = [importlib.import_module(f"{__name__}.{name}") for name in names]
    return {module.NAME: module for module in modules}
