"""The committed results/ were made by the code in this checkout (issue: a stale report must not
land): every figure has a provenance entry whose code hash, library versions and context match
what `t2isim figures` (full mode, seed 0, default bundle) would record now."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from experiments.figures.provenance import (
    PROVENANCE_FILE,
    ROOT,
    _dependency_files,
    code_text,
    figure_provenance,
    module_names,
    record_provenance,
    report_context,
    stale_figures,
)
from experiments.figures.registry import figure_modules

RESULTS = Path(__file__).resolve().parents[1] / "results"
COMMITTED = report_context(bundle_spec="default", quick=False, seed=0)


def test_committed_results_were_made_by_this_code():
    stale = stale_figures(RESULTS, module_names(figure_modules()), COMMITTED)
    assert not stale, (
        "results/ is stale, regenerate with `t2isim figures --jobs 2`: "
        + "; ".join(f"{name}: {why}" for name, why in stale.items())
    )


def test_every_committed_figure_file_has_an_entry():
    entries = json.loads((RESULTS / PROVENANCE_FILE).read_text())
    csvs = {p.stem for p in RESULTS.glob("*.csv")}
    assert csvs == set(entries) == set(figure_modules())
    assert all(set(COMMITTED) <= set(entry) for entry in entries.values())


def _edit_tab01(monkeypatch, addition: str) -> None:
    """Make tab01's module read as its text plus `addition`."""
    import experiments.figures.provenance as provenance

    tab01_file = Path(figure_modules()["tab01"].__file__)
    real_read_text = Path.read_text

    def read_text(self, *args, **kwargs):
        text = real_read_text(self, *args, **kwargs)
        return text + addition if self == tab01_file else text

    monkeypatch.setattr(Path, "read_text", read_text)
    provenance._dependency_files.cache_clear()


def test_a_change_to_a_dependency_makes_only_its_figures_stale(tmp_path, monkeypatch):
    names = module_names(["fig07", "tab01"])
    record_provenance(tmp_path, names, COMMITTED)
    assert stale_figures(tmp_path, names, COMMITTED) == {}
    # tab01 reads fig07's module; fig07 does not read tab01's
    _edit_tab01(monkeypatch, "\nEDITED = 1\n")
    assert set(stale_figures(tmp_path, names, COMMITTED)) == {"tab01"}
    assert "code" in stale_figures(tmp_path, names, COMMITTED)["tab01"]


PROSE = '''
# a new comment

def helper():  # and one here
    """A docstring."""
    return 1
'''


def test_an_edit_to_comments_or_docstrings_leaves_the_figures_current(tmp_path, monkeypatch):
    names = module_names(["tab01"])
    record_provenance(tmp_path, names, COMMITTED)
    _edit_tab01(monkeypatch, PROSE)
    assert set(stale_figures(tmp_path, names, COMMITTED)) == {"tab01"}  # the function is code
    record_provenance(tmp_path, names, COMMITTED)
    monkeypatch.undo()
    _edit_tab01(monkeypatch, PROSE.replace("A docstring.", "Reworded.").replace("new", "newer"))
    assert stale_figures(tmp_path, names, COMMITTED) == {}


CODE_AND_PROSE = '''"""Module docstring,
over two lines."""

import os  # a comment
class A:
    """Class docstring."""
    x = '# not a comment'   
def f():
    """Doc."""; y = 1
    return """a

  b  """
'''


def test_code_text_drops_prose_and_keeps_what_runs(tmp_path):
    source = tmp_path / "m.py"
    source.write_text(CODE_AND_PROSE)
    assert code_text(source).decode().split("\n") == [
        "import os",
        "class A:",
        "    x = '# not a comment'",
        "def f():",
        '    """Doc."""; y = 1',  # a statement after the docstring: the line stays
        '    return """a',
        "",  # inside a string: kept as written
        '  b  """',
    ]
    reads_doc = tmp_path / "d.py"
    reads_doc.write_text('"""Usage: d.py."""\nprint(__doc__)\n')
    assert code_text(reads_doc).decode().startswith('"""Usage: d.py."""')


def test_quick_results_do_not_pass_for_full_ones(tmp_path):
    names = module_names(["tab01"])
    record_provenance(tmp_path, names, {**COMMITTED, "mode": "quick"})
    assert "mode" in stale_figures(tmp_path, names, COMMITTED)["tab01"]


def test_hash_covers_imports_inside_functions_and_package_data():
    fig07 = module_names(["fig07"])["fig07"]
    files = {p.relative_to(ROOT).as_posix() for p in _dependency_files(fig07)}
    # `import policies` happens inside FigureContext.run; the fitted parameters are data
    assert {"policies/hadis.py", "simulator/data/default_model_params.json"} <= files
    assert "experiments/figures/fig13_routers.py" not in files


@pytest.mark.parametrize("name", ["fig02", "fig13"])
def test_provenance_is_stable_across_calls(name):
    module = module_names([name])[name]
    assert figure_provenance(module) == figure_provenance(module)
