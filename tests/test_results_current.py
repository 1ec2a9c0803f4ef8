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


def test_a_change_to_a_dependency_makes_only_its_figures_stale(tmp_path, monkeypatch):
    import experiments.figures.provenance as provenance

    names = module_names(["fig07", "tab01"])
    record_provenance(tmp_path, names, COMMITTED)
    assert stale_figures(tmp_path, names, COMMITTED) == {}
    # tab01 reads fig07's module; fig07 does not read tab01's
    tab01_file = Path(figure_modules()["tab01"].__file__)
    real_read_bytes = Path.read_bytes
    monkeypatch.setattr(
        Path,
        "read_bytes",
        lambda self: real_read_bytes(self) + (b"# edit" if self == tab01_file else b""),
    )
    provenance._dependency_files.cache_clear()
    assert set(stale_figures(tmp_path, names, COMMITTED)) == {"tab01"}
    assert "code" in stale_figures(tmp_path, names, COMMITTED)["tab01"]


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
