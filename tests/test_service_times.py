"""Service times measured on the serving path as a bundle's latency profile
(`serving.service_times`): the discriminator's charge taken out, a ratio per profiled batch
size with enough batches, the nearest size's ratio elsewhere, and a simulation charging the
measured medians back."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from experiments.inputs import resolve_bundle
from serving.service_times import (
    MIN_BATCHES,
    MIN_TAIL_BATCHES,
    SPEED_BIN_MIN_BATCHES,
    compared_latency,
    compared_latency_served_tails,
    discriminator_charge_s,
    read_batches,
    read_batches_file,
    served_latency_table,
    served_tails,
    speed_over_time,
    with_served_latency,
)
from simulator.config import SimConfig
from simulator.errors import InputError

LIGHT, HEAVY = "SDXL-Lightning", "SD3.5-Large-Turbo"
CONFIG = SimConfig(time_scale=0.1, disc_cost_s=0.05)  # 5 ms per judged image, as served


@pytest.fixture(scope="module")
def bundle():
    return resolve_bundle("default")


def profile_p50(bundle, model: str, size: int) -> float:
    rows = bundle.latency[(bundle.latency.model == model) & (bundle.latency.batch_size == size)]
    return float(rows["latency_p50_s"].iloc[0])


def batches_of(bundle, model: str, size: int, count: int, ratio: float, judged: bool):
    """`count` batches of `size` on `model` served `ratio` x its profile, plus the
    discriminator's charge when judged."""
    model_s = profile_p50(bundle, model, size) * CONFIG.time_scale * ratio
    charge = CONFIG.disc_cost_s * CONFIG.time_scale * size * judged
    return pd.DataFrame(
        {
            "worker": range(count),
            "model": model,
            "start_s": np.arange(count, dtype=float),
            "service_s": model_s + charge,
            "batch_size": size,
            "judged": judged,
        }
    )


def test_the_ratio_of_each_size_with_enough_batches_else_the_nearest(bundle):
    sizes = bundle.batch_sizes[LIGHT]
    assert sizes[:3] == (1, 2, 4)
    batches = pd.concat(
        [
            batches_of(bundle, LIGHT, 1, MIN_BATCHES, 1.5, judged=True),
            batches_of(bundle, LIGHT, 4, MIN_BATCHES, 1.2, judged=True),
            batches_of(bundle, LIGHT, 2, MIN_BATCHES - 1, 9.0, judged=True),  # too few
            batches_of(bundle, HEAVY, 1, MIN_BATCHES + 3, 2.0, judged=False),
        ]
    )
    table = served_latency_table(bundle, batches, CONFIG, uses_discriminator=True)
    light = table[table.model == LIGHT].set_index("batch_size")
    assert light.loc[1, "ratio"] == pytest.approx(1.5)
    assert light.loc[2, "ratio"] == pytest.approx(1.5)  # 1 and 4 equally near: the smaller
    assert light.loc[4, "ratio"] == pytest.approx(1.2)
    np.testing.assert_allclose(light.loc[[s for s in sizes if s >= 4], "ratio"], 1.2)
    assert light.loc[2, "served_batches"] == MIN_BATCHES - 1
    np.testing.assert_allclose(light["latency_p50_s"], light["profiled_p50_s"] * light["ratio"])
    heavy = table[table.model == HEAVY]
    np.testing.assert_allclose(heavy["ratio"], 2.0)
    others = table[~table.model.isin([LIGHT, HEAVY])]
    assert len(others) and (others["ratio"] == 1.0).all()  # never served: its profile
    p95 = bundle.latency.set_index(["model", "batch_size"])["latency_p95_s"]
    served_p95 = table.set_index(["model", "batch_size"])
    np.testing.assert_allclose(
        served_p95["latency_p95_s"], p95.loc[served_p95.index] * served_p95["ratio"]
    )


def test_the_served_bundle_charges_the_measured_median_back(bundle):
    batches = batches_of(bundle, LIGHT, 1, MIN_BATCHES, 1.5, judged=True)
    served = with_served_latency(bundle, batches, CONFIG, uses_discriminator=True)
    m = served.model_names.index(LIGHT)
    charge = discriminator_charge_s(batches, CONFIG, True)[0]
    assert served.latency_table_s[m][1] * CONFIG.time_scale + charge == pytest.approx(
        batches["service_s"].median()
    )
    assert list(served.latency.columns) == list(bundle.latency.columns)


def test_the_discriminator_charge_follows_the_simulators_rule(bundle):
    batches = pd.concat(
        [
            batches_of(bundle, LIGHT, 4, 1, 1.0, judged=True),
            batches_of(bundle, HEAVY, 2, 1, 1.0, judged=False),
        ]
    )
    disc = CONFIG.disc_cost_s * CONFIG.time_scale
    np.testing.assert_allclose(discriminator_charge_s(batches, CONFIG, True), [4 * disc, 0])
    np.testing.assert_allclose(discriminator_charge_s(batches, CONFIG, False), [0, 0])
    per_batch = SimConfig(time_scale=0.1, disc_cost_s=0.05, disc_cost_per="batch")
    np.testing.assert_allclose(discriminator_charge_s(batches, per_batch, True), [disc, disc])


def test_runs_without_batches_give_none(bundle, tmp_path):
    (tmp_path / "real-1").mkdir()
    (tmp_path / "real-2").mkdir()
    batches_of(bundle, LIGHT, 1, 3, 1.0, judged=True).to_csv(
        tmp_path / "real-1" / "batches.csv", index=False
    )
    names = bundle.model_names
    assert read_batches([tmp_path / "real-1", tmp_path / "real-2"], names) is None
    (read,) = read_batches([tmp_path / "real-1"], names)
    assert len(read) == 3 and read["judged"].dtype == bool


HEADER = "worker,model,start_s,service_s,batch_size,judged,cpu_s,preemptions"


@pytest.mark.parametrize(
    ("row", "named"),
    [
        ("0,{m},abc,0.1,1,True,0.1,3", "line 2: start_s: 'abc' must be a finite number"),
        ("0,nosuch,1,0.1,1,True,0.1,3", "line 2: model: 'nosuch' must be a model of the bundle"),
        ("0,{m},1,-5.5,1,True,0.1,3", "line 2: service_s: '-5.5' must be a finite number > 0"),
        ("0,{m},1,inf,1,True,0.1,3", "line 2: service_s: 'inf' must be a finite number > 0"),
        ("0,{m},1,0.1,1.5,True,0.1,3", "line 2: batch_size: '1.5' must be an integer >= 1"),
        ("-1,{m},1,0.1,1,True,0.1,3", "line 2: worker: '-1' must be an integer >= 0"),
        ("0,{m},1,0.1,1,yes,0.1,3", "line 2: judged: 'yes' must be True or False"),
        ("0,{m},1,0.1,1,True,-0.1,3", "line 2: cpu_s: '-0.1' must be a finite number >= 0"),
        ("0,{m},1,0.1,1,True,0.1,2.5", "line 2: preemptions: '2.5' must be an integer >= 0"),
    ],
)
def test_a_batches_table_is_checked_row_by_row(bundle, tmp_path, row, named):
    path = tmp_path / "batches.csv"
    good = f"0,{LIGHT},0.5,0.1,1,False,,"  # not measured: empty
    path.write_text(f"{HEADER}\n{row.format(m=LIGHT)}\n{good}\n")
    with pytest.raises(InputError, match=re.escape(f"{path}: {named}")):
        read_batches_file(path, bundle.model_names)
    path.write_text(f"{HEADER}\n{good}\n")
    assert np.isnan(read_batches_file(path, bundle.model_names)["cpu_s"]).all()
    for text, problem in [("", "not a CSV table"), ("worker\n0\n", "column model: missing")]:
        path.write_text(text)
        with pytest.raises(InputError, match=problem):
            read_batches_file(path, bundle.model_names)


def test_a_served_p50_never_falls_with_the_batch_size(bundle):
    batches = pd.concat(
        [
            batches_of(bundle, LIGHT, 1, MIN_BATCHES, 2.0, judged=True),
            batches_of(bundle, LIGHT, 2, MIN_BATCHES, 0.5, judged=True),
        ]
    )
    table = served_latency_table(bundle, batches, CONFIG, uses_discriminator=True)
    light = table[table.model == LIGHT].set_index("batch_size")
    one = 2.0 * profile_p50(bundle, LIGHT, 1)
    assert light.loc[2, "latency_p50_s"] == pytest.approx(
        max(one, 0.5 * profile_p50(bundle, LIGHT, 2))
    )
    assert light["latency_p50_s"].is_monotonic_increasing
    assert (light["latency_p95_s"] >= light["latency_p50_s"]).all()
    np.testing.assert_allclose(light["ratio"], light["latency_p50_s"] / light["profiled_p50_s"])


# ------------------------------------------------------------- `t2isim bundle served-latency`


def fake_real_run(
    bundle, folder, sim: dict, ratio: float = 1.5, with_batches: bool = True, source="default"
):
    """A run folder as `t2isim loadgen` writes it (a simulation standing in) of `bundle`, which
    `source` names, its light batches served `ratio` x the profile."""
    from experiments.inputs import resolve_trace
    from simulator.results import write_run
    from simulator.run import run_simulation

    config = SimConfig(**sim)
    options = {"light": LIGHT, "heavy": HEAVY, "router_ratio": 0.2, "disc_ratio": 0.3}
    trace = resolve_trace("constant:rate=2,duration=10", bundle, config.seed)
    run = run_simulation(bundle, trace, "static-cascade", config, options)
    summary = {**run.summary, "source": "serve", "bundle_source": source}
    write_run(folder, run.queries, run.timeseries, summary, run.config, [])
    if with_batches:
        batches_of(bundle, LIGHT, 1, MIN_BATCHES, ratio, judged=True).to_csv(
            folder / "batches.csv", index=False
        )


def test_cli_served_latency_writes_the_runs_bundle_with_their_service_times(bundle, tmp_path):
    from typer.testing import CliRunner

    from experiments.cli import app
    from simulator.bundle import load_bundle

    sim = CONFIG.to_dict()
    runs = [tmp_path / "real-1", tmp_path / "real-2"]
    for run in runs:
        fake_real_run(bundle, run, sim)
    runner = CliRunner()
    out = tmp_path / "served"
    result = runner.invoke(app, ["bundle", "served-latency", *map(str, runs), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"{LIGHT} batch 1:" in result.output and "(x1.500, 10 batches)" in result.output
    served = load_bundle(out)
    m = served.model_names.index(LIGHT)
    assert served.latency_table_s[m][1] == pytest.approx(1.5 * bundle.latency_table_s[m][1])
    assert served.meta["served_latency"]["runs"] == [str(r) for r in runs]
    assert served.meta["served_latency"]["ratio"][HEAVY]["1"] == 1.0
    # bad input: one line, exit 2, nothing written
    fake_real_run(bundle, tmp_path / "old", sim, with_batches=False)
    fake_real_run(bundle, tmp_path / "other", {**sim, "slo_s": 9.0})
    broken = tmp_path / "broken"
    fake_real_run(bundle, broken, sim)
    (broken / "summary.json").write_text("[" * 30_000 + "]" * 30_000)
    keyless = tmp_path / "keyless"
    fake_real_run(bundle, keyless, sim)
    (keyless / "config.json").write_text('{"policy": "static-cascade"}')
    cases = [
        ([str(tmp_path / "old")], "no batches.csv"),
        ([str(broken)], "summary.json: invalid JSON (nested too deeply to read)"),
        ([str(keyless)], "config.json: key 'sim': missing"),
        ([str(runs[0]), str(tmp_path / "other")], "another bundle, policy or settings"),
        ([str(runs[0]), "--bundle", "default:replicate=2"], "not the bundle the runs served"),
    ]
    for args, named in cases:
        result = runner.invoke(
            app, ["bundle", "served-latency", *args, "--out", str(tmp_path / "x")]
        )
        assert result.exit_code == 2, result.output
        assert named in result.output and result.output.count("\n") == 1
        assert not (tmp_path / "x").exists()


def test_a_profiles_p05_is_scaled_with_its_p50_and_carried_into_the_served_bundle(bundle):
    import dataclasses

    with_p05 = dataclasses.replace(
        bundle, latency=bundle.latency.assign(latency_p05_s=bundle.latency["latency_p50_s"] * 0.8)
    )
    batches = batches_of(with_p05, LIGHT, 1, MIN_BATCHES, 1.5, judged=True)
    table = served_latency_table(with_p05, batches, CONFIG, uses_discriminator=True)
    expected = 0.8 * table["profiled_p50_s"] * table["ratio"]
    np.testing.assert_allclose(table["latency_p05_s"], expected)
    served = with_served_latency(with_p05, batches, CONFIG, uses_discriminator=True)
    assert "latency_p05_s" in served.latency.columns
    m = served.model_names.index(LIGHT)
    assert served.latency_p05_table_s[m][1] == pytest.approx(0.8 * served.latency_table_s[m][1])
    assert "latency_p05_s" not in with_served_latency(bundle, batches, CONFIG, True).latency


def test_the_served_bundle_of_a_bundle_timed_after_idle_has_no_latency_after_idle(bundle, tmp_path):
    """A served batch's time is after the idle it had: the runs' bundle keeps no idle columns."""
    from serving.service_times import served_bundle
    from simulator.bundle import load_bundle, validate_tables, write_bundle

    latency = bundle.latency.assign(
        idle_gap_s=0.1, latency_idle_p50_s=bundle.latency["latency_p50_s"] * 1.2
    )
    tables = {t: getattr(bundle, t) for t in ("models", "prompts", "scores", "cascades")}
    folder = write_bundle(
        validate_tables(bundle.meta, {**tables, "latency": latency}), tmp_path / "b"
    )
    timed = load_bundle(folder)
    assert timed.has_idle_latency
    fake_real_run(timed, tmp_path / "real-1", CONFIG.to_dict(), source=str(folder))
    served, _ = served_bundle([tmp_path / "real-1"])
    assert not served.has_idle_latency and "idle_gap_s" not in served.latency
    m = served.model_names.index(LIGHT)
    assert served.latency_table_s[m][1] == pytest.approx(1.5 * timed.latency_table_s[m][1])


def test_the_served_cpu_time_is_each_sizes_median_less_the_same_charge(bundle):
    """`served_cpu_p50_s`: the median thread CPU of a row's own batches, less the
    discriminator's charge as the served time is, in the profile's time; NaN where none of its
    batches was measured (another size's, an emulated run's None, or a run before `cpu_s`)."""
    light = batches_of(bundle, LIGHT, 1, MIN_BATCHES, 1.5, judged=True)
    light = light.assign(cpu_s=light["service_s"] * np.linspace(0.8, 0.9, MIN_BATCHES))
    heavy = batches_of(bundle, HEAVY, 1, MIN_BATCHES, 1.0, judged=False).assign(cpu_s=np.nan)
    table = served_latency_table(
        bundle, pd.concat([light, heavy]), CONFIG, uses_discriminator=True
    ).set_index(["model", "batch_size"])
    charge = discriminator_charge_s(light, CONFIG, True)
    expected = np.median((light["cpu_s"].to_numpy() - charge) / CONFIG.time_scale)
    assert table.loc[(LIGHT, 1), "served_cpu_p50_s"] == pytest.approx(expected)
    assert np.isnan(table.loc[(LIGHT, 2), "served_cpu_p50_s"])  # no batch of 2 served
    assert np.isnan(table.loc[(HEAVY, 1), "served_cpu_p50_s"])
    before = served_latency_table(bundle, light.drop(columns="cpu_s"), CONFIG, True)
    assert before["served_cpu_p50_s"].isna().all()


def test_the_served_preemptions_are_each_sizes_median(bundle):
    """`served_preemptions_p50`: the median count of a row's own batches; NaN where none was
    counted (an emulated run's None, or a run before `preemptions`)."""
    light = batches_of(bundle, LIGHT, 1, MIN_BATCHES, 1.5, judged=True)
    light = light.assign(preemptions=np.arange(MIN_BATCHES) * 5 % 13)
    heavy = batches_of(bundle, HEAVY, 1, MIN_BATCHES, 1.0, judged=False)
    heavy = heavy.assign(preemptions=np.nan)
    table = served_latency_table(
        bundle, pd.concat([light, heavy]), CONFIG, uses_discriminator=True
    ).set_index(["model", "batch_size"])
    assert table.loc[(LIGHT, 1), "served_preemptions_p50"] == np.median(light["preemptions"])
    assert np.isnan(table.loc[(LIGHT, 2), "served_preemptions_p50"])
    assert np.isnan(table.loc[(HEAVY, 1), "served_preemptions_p50"])
    before = served_latency_table(bundle, light.drop(columns="preemptions"), CONFIG, True)
    assert before["served_preemptions_p50"].isna().all()


def test_the_speed_over_time_bins_each_runs_batches_of_one():
    """Per run, model and 10-s bin: the p50 CPU less the charge, the p50 wall and preemptions
    per ms of wall; bins with too few batches of one, other sizes and unmeasured ones left out."""
    n = SPEED_BIN_MIN_BATCHES
    fast = pd.DataFrame(
        {
            "model": LIGHT,
            "batch_size": 1,
            "start_s": np.linspace(0, 9, n),
            "service_s": 0.016,
            "cpu_s": 0.015 + 0.001,
            "preemptions": 8.0,
            "judged": True,
        }
    )
    slow = fast.assign(
        start_s=np.linspace(10, 19, n), service_s=0.024, cpu_s=0.021 + 0.001, preemptions=12.0
    )
    few = fast.iloc[: n - 1].assign(start_s=25.0)  # a bin of too few batches
    pairs = fast.assign(batch_size=2, start_s=5.0)  # not batches of one
    unmeasured = fast.assign(cpu_s=np.nan)
    run = pd.concat([fast, slow, few, pairs, unmeasured], ignore_index=True)
    charge = np.full(len(run), 0.001)
    speeds = speed_over_time({"real-1": run}, {"real-1": charge})
    assert list(speeds["bin_start_s"]) == [0.0, 10.0]
    assert speeds["cpu_p50_s"].to_numpy() == pytest.approx([0.015, 0.021])
    assert speeds["wall_p50_s"].to_numpy() == pytest.approx([0.016, 0.024])
    assert speeds["preemptions_per_ms"].to_numpy() == pytest.approx([0.5, 0.5])  # follows length
    assert list(speeds["batches"]) == [n, n] and set(speeds["run"]) == {"real-1"}
    emulated = run.assign(cpu_s=np.nan, preemptions=np.nan)
    assert speed_over_time({"real-1": emulated}, {"real-1": charge}).empty


def test_served_tails_are_the_batches_own_quantiles_where_enough_were_served(bundle, tmp_path):
    """A size with MIN_TAIL_BATCHES batches gets their own p05 and p95 (the charge taken out,
    in the bundle's seconds); one with fewer keeps the profile's shape; `served_tails` and the
    compared profile put them in place of the scaled shape."""
    light = batches_of(bundle, LIGHT, 1, MIN_TAIL_BATCHES, 1.0, judged=True)
    spread = np.linspace(0.5, 3.0, MIN_TAIL_BATCHES)  # a tail the profile's shape lacks
    light = light.assign(service_s=light["service_s"] + spread * 0.01)
    heavy = batches_of(bundle, HEAVY, 1, MIN_TAIL_BATCHES - 1, 2.0, judged=False)
    table = served_latency_table(bundle, pd.concat([light, heavy]), CONFIG, True)
    rows = table.set_index(["model", "batch_size"])
    model_s = (light["service_s"] - discriminator_charge_s(light, CONFIG, True)) / 0.1
    assert rows.loc[(LIGHT, 1), "served_p95_s"] == pytest.approx(np.quantile(model_s, 0.95))
    assert rows.loc[(LIGHT, 1), "served_p05_s"] == pytest.approx(np.quantile(model_s, 0.05))
    assert rows.loc[(HEAVY, 1), ["served_p05_s", "served_p95_s"]].isna().all()  # too few
    assert rows.loc[(LIGHT, 2), ["served_p05_s", "served_p95_s"]].isna().all()  # none served
    tails = served_tails(table).set_index(["model", "batch_size"])
    assert tails.loc[(LIGHT, 1), "latency_p95_s"] == rows.loc[(LIGHT, 1), "served_p95_s"]
    assert tails.loc[(LIGHT, 1), "latency_p95_s"] != rows.loc[(LIGHT, 1), "latency_p95_s"]
    kept = [(HEAVY, 1), (LIGHT, 2)]
    pd.testing.assert_frame_equal(tails.loc[kept], rows.loc[kept])
    m = bundle.model_names.index(LIGHT)
    served = with_served_latency(bundle, pd.concat([light, heavy]), CONFIG, True, tails=True)
    assert served.latency_p95_table_s[m][1] == pytest.approx(np.quantile(model_s, 0.95))
    path = tmp_path / "served_latency.csv"
    table.to_csv(path, index=False)
    compared = compared_latency_served_tails(path, bundle)
    assert compared.latency_p95_table_s[m][1] == pytest.approx(np.quantile(model_s, 0.95))
    assert compared_latency(path, bundle).latency_p95_table_s[m][1] == pytest.approx(
        rows.loc[(LIGHT, 1), "latency_p95_s"]
    )
    bundle.latency.to_csv(path, index=False)  # a profile's table: nothing served to take
    assert compared_latency_served_tails(path, bundle) is None


def test_a_served_tail_stays_on_its_side_of_the_p50():
    table = pd.DataFrame(
        {
            "latency_p50_s": [1.0, 1.0],
            "latency_p95_s": [1.5, 1.5],
            "latency_p05_s": [0.8, 0.8],
            "served_p95_s": [0.9, np.nan],  # below a p50 raised by a smaller size's
            "served_p05_s": [1.2, np.nan],
        }
    )
    tails = served_tails(table)
    assert tails["latency_p95_s"].tolist() == [1.0, 1.5]
    assert tails["latency_p05_s"].tolist() == [1.0, 0.8]


def test_cli_served_latency_takes_the_served_tails_when_asked(bundle, tmp_path):
    from typer.testing import CliRunner

    from experiments.cli import app
    from simulator.bundle import load_bundle

    run = tmp_path / "real-1"
    fake_real_run(bundle, run, CONFIG.to_dict())
    light = batches_of(bundle, LIGHT, 1, MIN_TAIL_BATCHES, 1.0, judged=True)
    spread = np.linspace(0.5, 3.0, MIN_TAIL_BATCHES) * 0.01
    light.assign(service_s=light["service_s"] + spread).to_csv(run / "batches.csv", index=False)
    runner = CliRunner()
    m = bundle.model_names.index(LIGHT)
    p95 = {}
    for flag in ([], ["--served-tails"]):
        out = tmp_path / f"served{len(flag)}"
        result = runner.invoke(
            app, ["bundle", "served-latency", str(run), "--out", str(out), *flag]
        )
        assert result.exit_code == 0, result.output
        served = load_bundle(out)
        assert served.meta["served_latency"]["served_tails"] == bool(flag)
        p95[bool(flag)] = served.latency_p95_table_s[m][1]
    table = served_latency_table(bundle, pd.read_csv(run / "batches.csv"), CONFIG, True)
    own = table.set_index(["model", "batch_size"]).loc[(LIGHT, 1)]
    assert p95 == {
        False: pytest.approx(own["latency_p95_s"]),
        True: pytest.approx(own["served_p95_s"]),
    }
