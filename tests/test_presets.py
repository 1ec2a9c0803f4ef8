"""The modelling presets (`simulator/presets.py`: paper, artifact, default), their CLI behaviour,
and the sensitivity table that varies their choices (`experiments/figures/tab02_sensitivity.py`)."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from bundle_factory import make_bundle
from typer.testing import CliRunner

from experiments.cli import app
from experiments.figures import tab02_sensitivity as tab02
from experiments.figures.context import FigureContext
from policies.planning import HADIS_OPTIONS
from policies.proteus import PROTEUS_OPTIONS
from simulator.bundle import write_bundle
from simulator.config import PLAN_CHANGE_MODES, SimConfig
from simulator.presets import (
    MODELLING_PRESETS,
    PRESETS,
    TESTBED_SCALE_FIELDS,
    UnknownPresetError,
    get_preset,
    markdown_table,
    preset_rows,
)

DOC = Path(__file__).resolve().parents[1] / "docs" / "PRESETS.md"
TINY_TRACE = "poisson:rate=2,duration=20"
# planner=faithful (the paper and artifact presets) needs the artifact's four models
ARTIFACT_MODELS = ("SDXL-Lightning", "SD3.5-Large-Turbo", "SD3.5-Medium", "SD3.5-Large")


def artifact_named_bundle(n_prompts: int):
    return make_bundle(
        dict(zip(ARTIFACT_MODELS, (0.5, 1.3, 6.0, 12.0))),
        dict(zip(ARTIFACT_MODELS, (30.0, 26.0, 21.0, 20.0))),
        n_prompts=n_prompts,
    )


def applied(name: str, policy: str = "hadis", given: set[str] | None = None, options=None):
    """(config fields, policy, options) of preset `name` over no command-line values."""
    return get_preset(name).apply({}, policy, dict(options or {}), given or set())


# ----------------------------------------------------------------------------- the presets


def test_paper_preset_is_the_papers_description():
    fields, policy, options = applied("paper")
    assert fields == {"demand_estimator": "ewma", "load_s": None, "on_plan_change": "reroute"}
    assert policy == "hadis"
    assert options == {"planner": "faithful", "demand_signal": "observation", "spare": "idle"}
    assert applied("paper", "proteus", {"policy"})[2] == {"routing": "workers"}
    assert applied("paper", "clipper-light", {"policy"})[2] == {}


def test_artifact_preset_is_the_testbed_without_its_scale():
    testbed = PRESETS["artifact-testbed"]
    fields, policy, options = applied("artifact")
    assert set(TESTBED_SCALE_FIELDS) == {"n_workers", "slo_s", "time_scale"}
    assert fields == {
        k: s.value for k, s in testbed.config.items() if k not in TESTBED_SCALE_FIELDS
    }
    assert not set(TESTBED_SCALE_FIELDS) & set(fields)
    assert fields["demand_estimator"] != SimConfig().demand_estimator  # the in-flight count
    assert fields["inflight_factor"] == 1.2
    assert fields["load_s"] == 0.0
    # the artifact's worker keeps its queue for its new model; its load balancer sends an
    # escalated query to the next model level hosted (tests/test_plan_change.py)
    assert fields["on_plan_change"] == "keep" != SimConfig().on_plan_change
    assert fields["escalation"] == "next-hosted" != SimConfig().escalation
    assert policy == "hadis"
    assert options == {k: s.value for k, s in testbed.policy_options.items()}
    assert options["planner"] == "faithful" and options["demand_signal"] == "artifact"
    assert applied("artifact", "proteus", {"policy"})[2] == {"routing": "workers"}
    # the testbed preset itself still carries its scale
    assert applied("artifact-testbed")[0]["time_scale"] == 0.1


def test_default_preset_is_the_projects_defaults():
    """`--preset default` changes nothing: the SimConfig and option defaults, so every figure
    that uses no preset uses the default preset."""
    fields, policy, options = applied("default")
    assert replace(SimConfig(), **fields) == SimConfig()
    assert policy == "hadis"
    assert options == {"planner": "default", "spare": "distribute"}
    assert all(HADIS_OPTIONS[k].default == v for k, v in options.items())
    proteus = applied("default", "proteus", {"policy"})[2]
    assert proteus == {"routing": PROTEUS_OPTIONS["routing"].default} == {"routing": "capacity"}


def test_every_preset_value_is_a_declared_option_value():
    declared = {"hadis": HADIS_OPTIONS, "proteus": PROTEUS_OPTIONS}
    for name in MODELLING_PRESETS:
        preset = get_preset(name)
        SimConfig(**applied(name)[0])  # valid config fields and values
        for policy, options in [("hadis", preset.policy_options or {})] + [
            (p, o) for p, o in preset.options_by_policy.items() if p in declared
        ]:
            for key, sourced in options.items():
                assert declared[policy][key].parse(policy, key, sourced.value) == sourced.value
                assert sourced.source


def test_explicit_option_overrides_the_preset():
    fields, policy, options = applied(
        "paper", "proteus", {"policy", "demand_estimator"}, {"routing": "capacity"}
    )
    assert policy == "proteus" and options == {"routing": "capacity"}
    assert "demand_estimator" not in fields  # given on the command line: the CLI's value stays


def test_docs_hold_every_presets_table():
    """docs/PRESETS.md holds each modelling preset's table (knob, value, source per row)."""
    doc = DOC.read_text()
    for name in MODELLING_PRESETS:
        preset = get_preset(name)
        rows = preset_rows(preset)
        assert len(rows) >= 5 and all(source for _, _, source in rows)
        table = markdown_table(preset)
        assert len(table) == 2 + len(rows)
        assert f"### `{name}`" in doc
        assert "\n".join(table) in doc, f"docs/PRESETS.md: the table of {name} is stale"
    paper = dict((knob, value) for knob, value, _ in preset_rows(get_preset("paper")))
    assert paper["--option spare"] == "idle" and paper["load_s (--load-s)"] == "the bundle's"


def test_unknown_preset_is_an_input_error():
    with pytest.raises(UnknownPresetError, match=r"--preset: unknown preset 'nope'; known: "):
        get_preset("nope")


def test_proteus_routing_workers_draws_each_worker_equally():
    """routing=workers (paper, artifact): a model's share is its share of the workers;
    capacity (default): its share of the planned capacity; same workers and batch sizes."""
    import policies  # noqa: F401  (registers proteus)
    from simulator.policy import Observation, PolicyContext, make_policy

    bundle = artifact_named_bundle(100)
    n = len(bundle.model_names)
    seen = Observation(0.0, 6.0, 6.0, 0, (0.0,) * n, (0.0,) * n, 8, 30.0, None)
    plans = {
        r: make_policy("proteus", PolicyContext(bundle, 8, 30.0, options={"routing": r})).plan(seen)
        for r in ("capacity", "workers")
    }
    by_workers, by_capacity = plans["workers"], plans["capacity"]
    assert by_workers.workers == by_capacity.workers and len(by_workers.workers) >= 2
    total = sum(by_workers.workers.values())
    assert by_workers.mix == pytest.approx({m: w / total for m, w in by_workers.workers.items()})
    assert by_workers.mix != pytest.approx(by_capacity.mix)


# ----------------------------------------------------------------------------- the CLI


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory):
    bundle = artifact_named_bundle(100)
    return write_bundle(bundle, tmp_path_factory.mktemp("presets") / "bundle")


def simulate(bundle_dir, out, *args):
    return CliRunner().invoke(
        app,
        ["simulate", "--bundle", str(bundle_dir), "--trace", TINY_TRACE, "--workers", "4",
         "--out", str(out), "--quiet", *args],
    )


def run_config(out) -> dict:
    return json.loads((out / "config.json").read_text())


def test_cli_preset_sets_its_values_and_explicit_values_win(bundle_dir, tmp_path):
    result = simulate(bundle_dir, tmp_path / "paper", "--preset", "paper", "--policy", "proteus")
    assert result.exit_code == 0, result.output
    config = run_config(tmp_path / "paper")
    assert config["policy"] == "proteus" and config["policy_options"] == {"routing": "workers"}
    result = simulate(
        bundle_dir, tmp_path / "artifact", "--preset", "artifact", "--demand-estimator", "ewma",
        "--load-s", "3", "--option", "spare=idle",
    )
    assert result.exit_code == 0, result.output
    config = run_config(tmp_path / "artifact")
    assert config["sim"]["demand_estimator"] == "ewma"  # explicit, over the preset's inflight
    assert config["sim"]["load_s"] == 3.0  # explicit, over the preset's 0
    assert config["sim"]["inflight_factor"] == 1.2 and config["sim"]["plan_interval_s"] == 1.0
    assert config["sim"]["n_workers"] == 4 and config["sim"]["slo_s"] == 60.0  # not testbed's
    assert config["policy_options"]["spare"] == "idle"
    assert config["policy_options"]["planner"] == "faithful"


def test_cli_unknown_preset_exits_2_with_one_line(bundle_dir, tmp_path):
    result = simulate(bundle_dir, tmp_path / "x", "--preset", "papr")
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output
    known = r"known: .*artifact.*default.*paper"
    assert re.search(rf"--preset: unknown preset 'papr'; {known}", lines[0])
    assert not (tmp_path / "x").exists()


# ----------------------------------------------------------------------------- tab02


def test_sensitivity_alternatives_cover_every_declared_value():
    alts = tab02.choice_alternatives()
    by_choice: dict[str, list[str]] = {}
    for alt in alts:
        by_choice.setdefault(alt.choice, []).append(alt.value)
    assert by_choice["demand estimator"] == list(tab02.DEMAND_ESTIMATORS)
    assert by_choice["spare workers"] == list(HADIS_OPTIONS["spare"].choices)
    assert by_choice["MILP planner"] == list(HADIS_OPTIONS["planner"].choices)
    assert by_choice["swap cost load_s"] == ["bundle", "0", "10"]
    assert by_choice["queued queries on a plan change"] == list(PLAN_CHANGE_MODES)
    kept = next(a for a in alts if a.value == "keep" and a.sim)
    assert kept.sim == {"on_plan_change": "keep"} and kept.options == {}
    assert by_choice["Proteus routing"] == ["capacity", "workers"]
    # exactly one default per choice, and it changes nothing
    for choice in by_choice:
        defaults = [a for a in alts if a.choice == choice and not a.sim and not a.options]
        assert len(defaults) == 1, choice
        assert defaults[0].setting == "defaults"
    spare_idle = next(a for a in alts if a.choice == "spare workers" and a.value == "idle")
    assert spare_idle.options == {"hadis": {"spare": "idle"}} and spare_idle.sim == {}
    presets = {a.value: a for a in tab02.preset_alternatives()}
    assert list(presets) == list(MODELLING_PRESETS)
    assert presets["default"].setting == "defaults"
    assert presets["paper"].options == {
        "hadis": {"planner": "faithful", "spare": "idle"},
        "proteus": {"routing": "workers"},
    }
    testbed_estimator = PRESETS["artifact-testbed"].config["demand_estimator"].value
    assert presets["artifact"].sim["demand_estimator"] == testbed_estimator != "ewma"


def test_sensitivity_compute_one_row_per_alternative(tmp_path, monkeypatch):
    bundle = artifact_named_bundle(150)
    folder = write_bundle(bundle, tmp_path / "bundle")
    ctx = FigureContext(
        str(folder), bundle, tmp_path / "out", quick=True,
        base=SimConfig(n_workers=6, slo_s=30.0),
    )
    monkeypatch.setattr(tab02, "TRACE", "azure:peak=6,min=1,seconds_per_hour=0.05")
    monkeypatch.setattr(tab02.seeds, "N_SEEDS_QUICK", 1)
    data = tab02.compute(ctx)
    alts = [*tab02.choice_alternatives(), *tab02.preset_alternatives()]
    assert list(data.columns) == tab02.COLUMNS
    assert list(zip(data["choice"], data["alternative"])) == [(a.choice, a.value) for a in alts]
    assert (data["n_seeds"] == 1).all()
    assert data[["hadis_fid", "proteus_fid"]].notna().all().all()
    ratios = data[["hadis_slo_violation_ratio", "proteus_slo_violation_ratio"]]
    assert ((ratios >= 0) & (ratios <= 1)).all().all()
    assert (data["fid_gap"] - (data["hadis_fid"] - data["proteus_fid"])).abs().max() < 1e-9
    # equal settings are equal runs: every default row (and the default preset) is the same
    defaults = data[data["default"]]
    assert len(defaults) == data["choice"].nunique()
    assert defaults[["hadis_fid", "proteus_fid"]].nunique().max() == 1
    # a choice that only HADIS reads leaves Proteus's runs alone, and vice versa
    spare = data[data["choice"] == "spare workers"]
    assert spare["proteus_fid"].nunique() == 1
    routing = data[data["choice"] == "Proteus routing"]
    assert routing["hadis_fid"].nunique() == 1
    assert tab02.report_lines(data)[2].startswith("| choice | alternative |")
    assert len(tab02.report_lines(data)) == 4 + len(data)
    fig = tab02.plot(data)
    assert len(fig.axes) == 2 and fig.axes[0].get_yticklabels()


def test_report_names_each_figures_preset_and_renders_the_table(tmp_path):
    from types import ModuleType

    from experiments.figures.report import figure_notes

    plain = ModuleType("plain")
    assert figure_notes(plain, tmp_path / "none.csv")[0].startswith("Preset: `default` ")
    testbed = ModuleType("testbed")
    testbed.PRESET = "artifact-testbed"
    assert figure_notes(testbed, tmp_path / "none.csv")[0].startswith(
        "Preset: `artifact-testbed` "
    )
    row = {c: 0.5 for c in tab02.COLUMNS}
    row.update(choice="spare workers", alternative="idle", setting="hadis: spare=idle",
               default=False, n_seeds=3, fid_gap=-0.25, slo_violation_ratio_gap=0.031)
    csv = tmp_path / "tab02.csv"
    pd.DataFrame([row], columns=tab02.COLUMNS).to_csv(csv, index=False)
    lines = figure_notes(tab02, csv)
    assert lines[0].startswith("Preset: `default` ") and "3 seeds" in lines[2]
    assert "| spare workers | idle | hadis: spare=idle | 0.50 ± 0.50 | 0.50 ± 0.50 | " \
        "-0.25 ± 0.50 | 50.00% ± 50.00% | 50.00% ± 50.00% | 3.10 pp ± 50.00 pp |" in lines
