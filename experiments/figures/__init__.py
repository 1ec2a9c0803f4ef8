"""Figures and tables of the papers, one module each (see experiments/figures/context.py for
the module contract). `FIGURES` maps each figure's NAME to its module, in report order."""

from __future__ import annotations

import importlib
from types import ModuleType

FIGURE_MODULES: tuple[str, ...] = ()  # module names under experiments.figures, report order


def figure_modules() -> dict[str, ModuleType]:
    """NAME -> module for every registered figure."""
    modules = [importlib.import_module(f"experiments.figures.{m}") for m in FIGURE_MODULES]
    return {module.NAME: module for module in modules}
