"""The figure notebooks (experiments/notebooks/) are up to date with their jupytext sources
(NN_topic.py, built by build_notebooks.py), execute (nbclient) on quick-mode results of the
default bundle, draw every figure they list through its module's `plot(data)` (a table with
`plot = None`: its data frame), and fail naming the file when a CSV is missing.

They run on the committed results (results/NAME.csv, full mode, made by this code:
test_results_current), with fig07 computed afresh in quick mode for the sweep store its notebook
reads (results/ does not commit it); each notebook runs on a folder holding only the CSVs it
lists, so a notebook that reads another figure's CSV fails here.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import nbclient
import nbformat
import pytest

from experiments.figures.context import FigureContext
from experiments.figures.registry import figure_module, figure_modules
from experiments.figures.report import make_figures
from experiments.inputs import resolve_bundle

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "experiments" / "notebooks"
COMMITTED = ROOT / "results"
WITH_STORE = "fig07"  # its notebook reads the sweep store behind it
NAMES = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
FIGURE_NOTEBOOKS = [n for n in NAMES if n not in ("04_routers.ipynb", "05_validation.ipynb")]
VALIDATION = COMMITTED / "validation"  # the committed `t2isim validate` output
TIMEOUT_S = 300


def load_generator():
    spec = importlib.util.spec_from_file_location(
        "build_notebooks", NOTEBOOKS / "build_notebooks.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


def read(name: str):
    return nbformat.read(NOTEBOOKS / name, as_version=4)


def figures_of(name: str) -> list[str]:
    return list(read(name).metadata["t2isim"]["figures"])


def execute(name: str):
    """The notebook executed in its folder (raises nbclient's CellExecutionError)."""
    nb = read(name)
    client = nbclient.NotebookClient(
        nb, timeout=TIMEOUT_S, kernel_name="python3", resources={"metadata": {"path": NOTEBOOKS}}
    )
    client.execute()
    return nb


@pytest.fixture(scope="session")
def figure_results(tmp_path_factory) -> Path:
    """The CSV of every figure a notebook lists: the committed one, but fig07's, computed here
    in quick mode with its sweep store (default bundle)."""
    names = sorted({f for n in FIGURE_NOTEBOOKS for f in figures_of(n)})
    out = tmp_path_factory.mktemp("figures")
    ctx = FigureContext("default", resolve_bundle("default"), out, quick=True)
    make_figures(ctx, [WITH_STORE])
    for name in names:
        if name != WITH_STORE:
            shutil.copy(COMMITTED / f"{name}.csv", out)
    return out


def results_for(figure_results: Path, figures: list[str], folder: Path) -> Path:
    """A results folder holding only these figures' CSVs (and, with fig07, the sweep store
    of the Azure-trace runs that 02_end_to_end reads)."""
    folder.mkdir()
    for figure in figures:
        shutil.copy(figure_results / f"{figure}.csv", folder)
    if WITH_STORE in figures:
        shutil.copytree(figure_results / "sweeps" / "azure", folder / "sweeps" / "azure")
    return folder


def test_generator_lists_five_notebooks_that_are_up_to_date():
    generator = load_generator()
    assert [p.with_suffix(".ipynb").name for p in generator.sources()] == NAMES
    assert sorted(generator.build_all()) == NAMES
    assert len(NAMES) == 5
    assert generator.main(["--check"]) == 0, "run experiments/notebooks/build_notebooks.py"


def test_notebook_is_its_source_cell_for_cell():
    generator = load_generator()
    nb = generator.build(NOTEBOOKS / "01_models_and_cascades.py")
    figures = nb.metadata["t2isim"]["figures"]
    assert figures[:3] == ["fig02", "fig03", "fig04"]
    assert "jupytext" not in nb.metadata
    figure_cells = [c for c in nb.cells if "figure" in c.metadata.get("tags", [])]
    assert [c.source for c in figure_cells] == [f'{f} = results.show("{f}")' for f in figures]
    assert [c.metadata["t2isim_figure"] for c in figure_cells] == figures
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# Models")
    assert [c.id for c in nb.cells[:3]] == ["cell-00", "cell-01", "cell-02"]


def test_figure_cell_without_a_figure_name_is_refused(tmp_path):
    source = tmp_path / "01_bad.py"
    source.write_text('# %%\nx = 1\n\n# %% tags=["figure"]\nx\n')
    with pytest.raises(ValueError, match="01_bad.py: cell 1 is tagged 'figure' without"):
        load_generator().build(source)


def test_every_figure_module_is_drawn_by_a_notebook():
    drawn = [f for n in FIGURE_NOTEBOOKS for f in figures_of(n)]
    assert sorted(drawn) == sorted(figure_modules()), "add the figure to a notebook source"


def test_committed_notebooks_have_no_outputs_and_valid_schema():
    for name in NAMES:
        nb = read(name)
        nbformat.validate(nb)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, name


def test_stale_notebook_is_detected(tmp_path):
    generator = load_generator()
    assert generator.main(["--out", str(tmp_path)]) == 0
    assert generator.main(["--check", "--out", str(tmp_path)]) == 0
    (tmp_path / NAMES[0]).write_text("{}")
    assert generator.main(["--check", "--out", str(tmp_path)]) == 1


@pytest.mark.parametrize("name", NAMES)
def test_notebook_executes_and_draws_every_figure(name, figure_results, tmp_path, monkeypatch):
    figures = figures_of(name)
    assert figures, f"{name} lists no figures"
    if name in FIGURE_NOTEBOOKS:
        folder = results_for(figure_results, figures, tmp_path / "results")
        monkeypatch.setenv("T2ISIM_RESULTS", str(folder))
    monkeypatch.delenv("T2ISIM_ROUTERS", raising=False)  # routers: the synthetic evaluation
    monkeypatch.setenv("T2ISIM_VALIDATION", str(VALIDATION))  # validation: the committed runs
    nb = execute(name)
    drawn = {}
    for cell in nb.cells:
        if "figure" in cell.metadata.get("tags", []):
            figure = cell.metadata["t2isim_figure"]
            table = figure in figure_modules() and figure_module(figure).plot is None
            shown = "text/html" if table else "image/png"  # a table shows its data frame
            drawn[figure] = sum(shown in o.get("data", {}) for o in cell.outputs)
    assert sorted(drawn) == sorted(figures)
    assert all(count >= 1 for count in drawn.values()), drawn
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    if "fig07" in figures:  # the cell reading the sweep store found it
        texts = [str(o.get("data", {}).get("text/plain", "")) + o.get("text", "") for o in outputs]
        assert not any("no sweep store" in t for t in texts)
        assert any("wall_s" in t for t in texts)


def test_missing_figure_csv_fails_naming_the_file(figure_results, tmp_path, monkeypatch):
    name = FIGURE_NOTEBOOKS[0]
    figures = figures_of(name)
    folder = results_for(figure_results, figures[:-1], tmp_path / "results")
    monkeypatch.setenv("T2ISIM_RESULTS", str(folder))
    with pytest.raises(nbclient.exceptions.CellExecutionError) as info:
        execute(name)
    assert info.value.ename == "MissingResultError"
    assert f"{figures[-1]}.csv not found in {folder}" in info.value.evalue
    assert all(f"{f}.csv" not in info.value.evalue for f in figures[:-1])


def test_missing_router_csv_fails_naming_the_file(tmp_path, monkeypatch):
    (tmp_path / "curves.csv").write_text("router,heavy_share,quality,dp\n")
    monkeypatch.setenv("T2ISIM_ROUTERS", str(tmp_path))
    with pytest.raises(nbclient.exceptions.CellExecutionError) as info:
        execute("04_routers.ipynb")
    assert info.value.ename == "MissingResultError"
    assert info.value.evalue.startswith(f"routers.csv not found in {tmp_path}")


def test_missing_validation_output_fails_naming_the_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("T2ISIM_VALIDATION", str(tmp_path))
    with pytest.raises(nbclient.exceptions.CellExecutionError) as info:
        execute("05_validation.ipynb")
    assert info.value.ename == "ValidationResultError"
    assert f"no `t2isim validate` output (DIR/fidelity.csv and DIR/real-1/) in {tmp_path}" in (
        info.value.evalue
    )
