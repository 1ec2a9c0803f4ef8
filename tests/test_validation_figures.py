"""serving/validation_figures.py on the committed validation output: which folders it reads,
the goals table's numbers, the panels each figure draws, and a one-line error naming a
missing file."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from serving.overhead_ledger import OVERHEAD_LEDGER, on_two_cores, read_overhead_ledger
from serving.validation_figures import (
    ValidationResultError,
    completed_latencies_s,
    experiments,
    goals_table,
    offline_profile_rows,
    plot_latency_cdfs,
    plot_overhead_runs,
    plot_preregistered,
    plot_speed_bins,
    profile_after_idle_s,
    read_preregistered,
    speed_sets,
)

VALIDATION = Path(__file__).resolve().parents[1] / "results" / "validation"
SESSION26 = VALIDATION / "session26" / "tiny-diffusers-static"


def test_the_committed_experiments_and_their_goals_table():
    names = experiments(VALIDATION)
    assert {"static-azure", "hadis-azure", "tiny-diffusers-static"} <= set(names)
    assert "session26" not in names  # a folder of sets, not a validate output
    table = goals_table(VALIDATION, ["static-azure"]).iloc[0]
    fidelity = pd.read_csv(VALIDATION / "static-azure" / "fidelity.csv").set_index("metric")
    assert table.p50_error_pct == fidelity.loc["p50_latency_s", "error"]
    assert table.p99_real_spread_pct == fidelity.loc["p99_latency_s", "real_spread"]


def test_latencies_are_each_runs_completed_queries():
    runs = completed_latencies_s(SESSION26)
    assert sorted(runs) == ["real-1", "real-2", "real-3", "sim"]
    queries = pd.read_parquet(SESSION26 / "real-2" / "queries.parquet")
    assert len(runs["real-2"]) == (queries.outcome.astype(str) != "drop").sum()


def test_each_figure_draws_a_panel_per_item():
    cdfs = plot_latency_cdfs(VALIDATION, ["static-azure", "hadis-azure"], cols=3)
    assert [ax.get_visible() for ax in cdfs.axes] == [True, True, False]
    assert cdfs.axes[0].get_title().startswith("static-azure: p50 ")
    sets = speed_sets(VALIDATION)
    assert SESSION26 in sets
    speed = plot_speed_bins([SESSION26])
    assert len(speed.axes) == 2  # tiny-heavy, tiny-light
    after_idle = profile_after_idle_s(SESSION26)
    latency = pd.read_csv(VALIDATION / "session26" / "tiny-profile" / "bundle" / "latency.csv")
    light = latency[(latency.model == "tiny-light") & (latency.batch_size == 1)]
    assert after_idle["tiny-light"] == light["latency_idle_p50_s"].iloc[0]
    ledger = read_preregistered(VALIDATION)
    errors = plot_preregistered(ledger)
    points = errors.axes[0].lines
    offline = offline_profile_rows(ledger)
    assert (~offline).any()  # session 28's profile beside the stack, at least
    assert sum(len(line.get_xdata()) for line in points if line.get_linestyle() == "None") == (
        2 * offline.sum() + (~offline).sum()
    )
    runs = read_overhead_ledger(VALIDATION / OVERHEAD_LEDGER)
    overhead = plot_overhead_runs(runs)
    markers = [line for line in overhead.axes[0].lines if line.get_linestyle() == "None"]
    fair = on_two_cores(runs)
    assert [len(line.get_xdata()) for line in markers] == [fair.sum(), (~fair).sum()]
    assert (~fair).sum() >= 1  # session 16's fourth run, 7.7% stolen
    for figure in (cdfs, speed, errors, overhead):
        plt.close(figure)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(
        ValidationResultError, match=f"no `t2isim validate` output .* in {tmp_path}"
    ):
        experiments(tmp_path)
    with pytest.raises(ValidationResultError, match="preregistered.csv not found in"):
        read_preregistered(tmp_path)
    (tmp_path / "x").mkdir()
    with pytest.raises(ValidationResultError, match="queries.parquet not found in"):
        completed_latencies_s(tmp_path / "x")
