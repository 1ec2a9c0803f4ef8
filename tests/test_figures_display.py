"""Figures as display objects: every module's `plot(data, ax=None)` draws (into the caller's
axes when given) and returns the Figure without writing anything; `report.make_figures` saves
it (or, for a table with `plot = None`, writes the CSV only); figures are registered in one
`Registry` in report order."""

from __future__ import annotations

import re
import types
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import pytest
from bundle_factory import small_figure_context
from matplotlib.figure import Figure

from experiments.figures import registry, report, style
from experiments.figures.registry import FIGURES, UnknownFigureError, figure_module

RESULTS = Path(__file__).resolve().parents[1] / "results"
DRAWN = [name for name in FIGURES if figure_module(name).plot is not None]


def drawn_on(ax) -> bool:
    """Whether anything was drawn into `ax` (data, text, a table or a legend)."""
    return bool(ax.has_data() or ax.texts or ax.tables or ax.get_legend() is not None)


# ----------------------------------------------------------------------------- registry


def test_registry_holds_every_module_file_by_name_in_report_order():
    folder = Path(registry.__file__).parent
    files = sorted(p.stem for p in folder.glob("*.py") if p.stem.startswith(("fig", "tab")))
    assert sorted(registry.FIGURE_MODULES) == files, "add the module to FIGURE_MODULES"
    assert FIGURES.names() == [stem.partition("_")[0] for stem in registry.FIGURE_MODULES]
    for name, module in registry.figure_modules().items():
        assert module.NAME == name and module.TITLE


def test_only_keeps_report_order_and_rejects_unknown_names():
    assert report.select_figures(["tab01", "fig03", "fig02"]) == ["fig02", "fig03", "tab01"]
    assert report.select_figures(None) == FIGURES.names()
    with pytest.raises(UnknownFigureError, match=r"unknown figure\(s\) fig99; known: fig02, "):
        report.select_figures(["fig02", "fig99"])
    with pytest.raises(UnknownFigureError, match="unknown figure 'fig99'; known: fig02"):
        figure_module("fig99")


# ----------------------------------------------------------------------------- plot(data, ax)


def test_figure_axes_checks_the_callers_axes():
    fig, axes = plt.subplots(2, 2)
    got, grid = style.figure_axes(axes, 1, 4)  # any shape of the right count, row-major
    assert got is fig and grid.shape == (1, 4) and list(grid[0]) == list(axes.ravel())
    assert style.figure_axes(axes[0, 1])[1][0, 0] is axes[0, 1]
    with pytest.raises(ValueError, match=r"draws into 3 matplotlib Axes \(3 x 1 panels\), got 4"):
        style.figure_axes(axes, 3, 1)
    with pytest.raises(ValueError, match="draws into 1 matplotlib Axes .* got a str holding str"):
        style.figure_axes("ax")
    with pytest.raises(ValueError, match="got a list holding int"):
        style.figure_axes([axes[0, 0], 3], 1, 2)
    _, other = plt.subplots()
    with pytest.raises(ValueError, match="must belong to one figure"):
        style.figure_axes([axes[0, 0], other], 1, 2)
    plt.close("all")


@pytest.mark.parametrize("name", DRAWN)
def test_plot_draws_into_callers_axes_and_writes_nothing(name, tmp_path, monkeypatch):
    module = figure_module(name)
    csv = RESULTS / f"{name}.csv"
    assert csv.is_file(), f"run `t2isim figures --only {name}` (results/ lacks {csv.name})"
    data = pd.read_csv(csv)  # the CSV as read back is all a figure needs
    monkeypatch.chdir(tmp_path)
    own = module.plot(data)
    assert isinstance(own, Figure) and plt.fignum_exists(own.number)  # returned, not closed
    with pytest.raises(ValueError, match=r"ax: this figure draws into \d+ matplotlib Axes") as info:
        module.plot(data, ax=[])
    panels = int(re.search(r"draws into (\d+)", str(info.value)).group(1))
    assert len(own.axes) >= panels
    theirs = plt.figure()
    axes = theirs.subplots(1, panels, squeeze=False).ravel()
    given = axes[0] if panels == 1 else list(axes)
    assert module.plot(data, ax=given) is theirs
    assert all(drawn_on(ax) for ax in axes)
    with pytest.raises(ValueError, match=f"draws into {panels} matplotlib Axes"):
        module.plot(data, ax=[*axes, theirs.add_subplot()])
    assert list(tmp_path.iterdir()) == []  # drawing saves nothing
    plt.close("all")


# ----------------------------------------------------------------------------- report


@pytest.fixture
def register_figure(monkeypatch):
    """Register stand-in figure modules for one test (removed after it); their provenance
    is not recorded (they have no source file)."""
    added = []

    def register(name: str, plot) -> None:
        module = types.ModuleType(f"test_{name}")
        module.NAME, module.TITLE = name, f"stand-in {name}"
        module.compute = lambda ctx: pd.DataFrame({"x": [0.0, 1.0, 2.0], "y": [1.0, 3.0, 2.0]})
        module.plot = plot
        module.claims = lambda data: []
        FIGURES.register(name, lambda: module)
        added.append(name)

    monkeypatch.setattr(report, "record_provenance", lambda *args: None)
    yield register
    for name in added:
        FIGURES.unregister(name)


def draw_xy(data: pd.DataFrame, ax=None) -> Figure:
    fig, axes = style.figure_axes(ax)
    axes[0, 0].plot(data["x"], data["y"], color=style.METHOD_COLORS["hadis"])
    return fig


def test_report_saves_the_figure_and_closes_it(register_figure, tmp_path):
    register_figure("test-figure", draw_xy)
    ctx = small_figure_context(tmp_path / "out")
    before = set(plt.get_fignums())
    report.make_figures(ctx, ["test-figure"])
    assert set(plt.get_fignums()) == before  # closed after saving
    expected = style.save(draw_xy(pd.read_csv(ctx.out_dir / "test-figure.csv")), tmp_path / "e.png")
    assert (ctx.out_dir / "test-figure.png").read_bytes() == expected.read_bytes()
    assert (
        "![test-figure](test-figure.png)"
        in report.write_report(ctx, {"test-figure": []}).read_text()
    )


def test_table_without_plot_gets_its_csv_only(register_figure, tmp_path):
    register_figure("test-table", None)
    ctx = small_figure_context(tmp_path)
    report.make_figures(ctx, ["test-table"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["test-table.csv"]
    text = report.write_report(ctx, {"test-table": []}).read_text()
    assert "Table: [test-table.csv](test-table.csv)" in text and "![test-table]" not in text


def test_plot_that_saves_instead_of_returning_fails_naming_the_module(register_figure, tmp_path):
    register_figure("test-old", lambda data, ax=None: None)  # the old contract: returns None
    ctx = small_figure_context(tmp_path)
    with pytest.raises(TypeError, match="test_test-old.plot returned NoneType, not a matplotlib"):
        report.make_figures(ctx, ["test-old"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["test-old.csv"]  # no PNG, no staging
