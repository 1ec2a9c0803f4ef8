"""The figure modules by NAME: `FIGURES`, a `simulator.registry.Registry` (as policies and
routers), in report order.

A new module `figNN_topic.py` or `tabNN_topic.py` of this package has NAME "figNN" / "tabNN"
(its file name up to the first "_") and is added to FIGURE_MODULES below; the report and
`--only` follow that order. FIGURES holds, per NAME, a loader that imports the module when it
is asked for: `t2isim figures --only NAME` imports only what it names. The list lives here, not
in the package's `__init__`, which every figure module imports: adding a figure leaves the
other figures' provenance hashes (experiments/figures/provenance.py) as they are.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from importlib import import_module
from types import ModuleType

from simulator.errors import InputError
from simulator.registry import Registry


class UnknownFigureError(InputError):
    """A figure name that is not registered."""


FIGURE_MODULES = (
    "fig02_frontier",
    "fig02b_three_stage",
    "fig03_best_pair",
    "fig04_feasibility",
    "fig07_azure",
    "fig08_phases",
    "fig09_ablation",
    "fig10_planners",
    "fig11_slo",
    "fig12_hardness",
    "fig13_routers",
    "fig14_load",
    "fig15_constant_load",
    "fig16_swap_cost",
    "tab01_overhead",
    "tab02_sensitivity",
    "tab03_fid_error",
)
PACKAGE = __name__.rpartition(".")[0]

FIGURES: Registry[Callable[[], ModuleType]] = Registry("figure", UnknownFigureError)
for _stem in FIGURE_MODULES:
    FIGURES.register(_stem.partition("_")[0], partial(import_module, f"{PACKAGE}.{_stem}"))
del _stem


def figure_module(name: str) -> ModuleType:
    """The module of figure NAME (imported on first use; UnknownFigureError naming the known
    figures for any other name)."""
    return FIGURES.get(name)()


def figure_modules() -> dict[str, ModuleType]:
    """NAME -> module for every registered figure, in report order."""
    return {name: figure_module(name) for name in FIGURES}
