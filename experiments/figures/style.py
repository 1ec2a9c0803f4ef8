"""Paper-style plotting shared by every figure module: Agg backend, one font size, one colour
and label per method, and a fixed legend order.

    def plot(data, ax=None):
        fig, axes = figure_axes(ax, 2, 1, width_in=COLUMN_IN * 2)
        axes[0, 0].plot(x, y, color=METHOD_COLORS["hadis"], label=METHOD_LABELS["hadis"])
        return fig          # the report saves it: save(fig, path)

`figure_axes` and `new_figure` always return a 2-D array of axes (squeeze off), so callers
index [row, col].
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)
import numpy as np  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

COLUMN_IN = 3.5  # one paper column, inches
ROW_IN = 2.2  # height of one row of panels, inches
DPI = 200

# Method order of every legend and bar chart: baselines first, HADIS last (as the paper).
METHOD_ORDER = (
    "clipper-light",
    "clipper-heavy",
    "proteus",
    "diffserve",
    "random",
    "router-only",
    "disc-only",
    "static-cascade",
    "cache-d",
    "cache-dq",
    "hadis",
)
METHOD_LABELS = {
    "clipper-light": "Clipper-Light",
    "clipper-heavy": "Clipper-Heavy",
    "proteus": "Proteus",
    "diffserve": "DiffServe",
    "random": "Random",
    "router-only": "Router-only",
    "disc-only": "Disc-only",
    "static-cascade": "Static cascade",
    "cache-d": "Cache-D",
    "cache-dq": "Cache-D+Q",
    "hadis": "HADIS",
}
METHOD_COLORS = {
    "clipper-light": "#9ecae1",
    "clipper-heavy": "#08519c",
    "proteus": "#2ca02c",
    "diffserve": "#ff7f0e",
    "random": "#7f7f7f",
    "router-only": "#9467bd",
    "disc-only": "#8c564b",
    "static-cascade": "#bcbd22",
    "cache-d": "#17becf",
    "cache-dq": "#e377c2",
    "hadis": "#d62728",
}

RC = {
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "legend.frameon": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "0.9",
    "grid.linewidth": 0.5,
    "lines.linewidth": 1.1,
    "savefig.dpi": DPI,
    "savefig.bbox": "tight",
    "savefig.pad_inches": 0.03,
}


def ordered(methods) -> list[str]:
    """`methods` (any iterable of policy names) in METHOD_ORDER; unknown names go last, sorted."""
    names = set(methods)
    rank = {m: i for i, m in enumerate(METHOD_ORDER)}
    return sorted(names, key=lambda m: (rank.get(m, len(rank)), m))


def method_line(method: str) -> dict:
    """Line-plot keywords of a method: its colour and label, markers, HADIS drawn bolder and
    on top."""
    return {
        "color": METHOD_COLORS.get(method, "0.5"),
        "label": METHOD_LABELS.get(method, method),
        "marker": "o",
        "ms": 3.5,
        "lw": 1.6 if method == "hadis" else 1.0,
        "zorder": 3 if method == "hadis" else 2,
    }


def new_figure(
    rows: int = 1,
    cols: int = 1,
    width_in: float | None = None,
    height_in: float | None = None,
    **subplots: object,
) -> tuple[Figure, np.ndarray]:
    """A figure in the paper style (sets matplotlib's rcParams to RC) and its axes as a
    rows x cols array; extra keyword arguments go to `plt.subplots` (sharex, gridspec_kw, ...)."""
    plt.rcParams.update(RC)  # global: legends and texts added later read rcParams
    fig, axes = plt.subplots(
        rows,
        cols,
        figsize=(width_in or COLUMN_IN * cols, height_in or ROW_IN * rows),
        squeeze=False,
        constrained_layout=True,
        **subplots,
    )
    return fig, axes


def figure_axes(
    ax: Axes | Sequence[Axes] | np.ndarray | None,
    rows: int = 1,
    cols: int = 1,
    width_in: float | None = None,
    height_in: float | None = None,
    **subplots: object,
) -> tuple[Figure, np.ndarray]:
    """Where a figure module's `plot(data, ax)` draws, as (figure, rows x cols array of axes):
    a new figure (`new_figure(rows, cols, width_in, height_in, **subplots)`) when `ax` is None,
    else the caller's axes of one figure, left as they are styled: one Axes for a single panel,
    or a sequence (or array) of rows * cols axes in row-major order. Anything else is a
    ValueError naming the number of axes the figure needs."""
    if ax is None:
        return new_figure(rows, cols, width_in, height_in, **subplots)
    panels = [ax] if isinstance(ax, Axes) else list(np.asarray(ax, dtype=object).ravel())
    wanted = f"{rows * cols} matplotlib Axes ({rows} x {cols} panels)"
    other = [type(p).__name__ for p in panels if not isinstance(p, Axes)]
    if other or len(panels) != rows * cols:
        got = f"a {type(ax).__name__} holding {other[0]}" if other else f"{len(panels)} Axes"
        raise ValueError(f"ax: this figure draws into {wanted}, got {got}")
    if any(p.figure is not panels[0].figure for p in panels):
        raise ValueError(f"ax: the {wanted} must belong to one figure")
    return panels[0].figure, np.array(panels, dtype=object).reshape(rows, cols)


def save(fig: Figure, path: Path) -> Path:
    """Write `fig` as a PNG at DPI (no software tag: the same figure gives the same bytes) and
    close it, also when writing fails."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=DPI, metadata={"Software": None})
    finally:
        plt.close(fig)
    return path
