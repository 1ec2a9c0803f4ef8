"""`serving.query_classes`: the per-class comparison of a validation, on hand-made runs whose
shares and medians are known, and on session 23's committed tiny set (its note's diagnosis)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from serving.query_classes import query_class, query_classes_table, query_classes_text

SESSION23 = Path(__file__).parent.parent / "results/validation/session23/tiny-diffusers-static"


def queries(rows: list[tuple]) -> pd.DataFrame:
    """(first, final, bypassed, escalated, outcome, wait_s, first_service_s, latency_s) rows,
    each arriving at t = 10 s."""
    columns = ["first", "final", "bypassed", "escalated", "outcome", "wait", "service", "lat"]
    table = pd.DataFrame(rows, columns=columns)
    return pd.DataFrame(
        {
            "first_model": table["first"].astype("category"),
            "final_model": table["final"],
            "bypassed": table["bypassed"],
            "escalated": table["escalated"],
            "outcome": table["outcome"],
            "arrival_s": 10.0,
            "start_s": 10.0 + table["wait"],
            "first_done_s": 10.0 + table["wait"] + table["service"],
            "completion_s": 10.0 + table["lat"],
        }
    )


def test_the_class_names_the_models_a_query_visited():
    q = queries(
        [
            ("L", "L", False, False, "ok", 0, 1, 1),
            ("H", "H", True, False, "ok", 0, 1, 1),
            ("L", "H", False, True, "ok", 0, 1, 2),
        ]
    )
    assert query_class(q).tolist() == ["L", "H (bypassed)", "L->H"]


def test_shares_and_medians_per_class_real_pooled_against_the_simulation():
    light = ("L", "L", False, False, "ok")
    heavy = ("H", "H", True, False, "ok")
    real_1 = queries([(*light, 1.0, 2.0, 3.0), (*light, 3.0, 4.0, 7.0), (*heavy, 1.0, 8.0, 9.0)])
    real_2 = queries([(*light, 5.0, 6.0, 11.0), (*heavy, 0.0, 8.0, 8.0)])
    dropped = ("L", "L", False, False, "drop", 0.0, 0.0, 0.0)
    sim = queries([(*light, 1.0, 1.0, 2.0), (*heavy, 1.0, 7.0, 8.0), dropped])
    table = query_classes_table([real_1, real_2], sim).set_index("class")
    assert table.index.tolist() == ["L", "H (bypassed)"]  # by real share
    assert table.loc["L", "real_share"] == pytest.approx(3 / 5)
    assert table.loc["L", "sim_share"] == pytest.approx(1 / 2)  # the drop is not counted
    assert table.loc["L", "real_wait_p50_s"] == 3.0
    assert table.loc["L", "real_first_service_p50_s"] == 4.0
    assert table.loc["L", "real_latency_p50_s"] == 7.0
    assert table.loc["H (bypassed)", "real_first_service_p50_s"] == 8.0
    assert table.loc["H (bypassed)", "sim_latency_p50_s"] == 8.0
    assert table.loc["L", "real_latency_mean_s"] == 7.0  # (3 + 7 + 11) / 3
    assert table.loc["H (bypassed)", "real_wait_mean_s"] == 0.5
    text = query_classes_text(table.reset_index())
    assert "L 60% real, 50% simulated: 7000.0 vs 2000.0 ms (wait 3000.0 vs 1000.0 ms" in text
    assert "H (bypassed) 40% real, 50% simulated: 8500.0 vs 8000.0 ms (wait 500.0" in text


def test_a_class_only_the_simulation_has_comes_last_with_no_real_share():
    real = queries([("L", "L", False, False, "ok", 1.0, 1.0, 2.0)])
    sim = queries([("L", "H", False, True, "ok", 1.0, 1.0, 3.0)])
    table = query_classes_table([real], sim)
    assert table["class"].tolist() == ["L", "L->H"]
    assert table["real_share"].tolist() == [1.0, 0.0]
    assert np.isnan(table.loc[1, "real_latency_p50_s"])


def test_runs_without_the_columns_give_no_table():
    real = queries([("L", "L", False, False, "ok", 1.0, 1.0, 2.0)]).drop(columns="first_done_s")
    assert query_classes_table([real], real).empty
    assert query_classes_text(pd.DataFrame()) == ""


def test_session_23s_light_only_queries_waited_as_simulated_and_were_served_slower():
    """The hand diagnosis of session 23's note: light-only queries waited about 9 ms on both
    sides but their batch took 15.8-16.0 ms real against 13.9 simulated."""
    real = [pd.read_parquet(SESSION23 / f"real-{k}" / "queries.parquet") for k in (1, 2, 3)]
    sim = pd.read_parquet(SESSION23 / "sim" / "queries.parquet")
    row = query_classes_table(real, sim).set_index("class").loc["tiny-light"]
    assert row["real_share"] == pytest.approx(0.5475, abs=1e-3)
    assert row["real_wait_p50_s"] == pytest.approx(row["sim_wait_p50_s"], abs=0.001)
    assert row["real_first_service_p50_s"] == pytest.approx(0.0159, abs=2e-4)
    assert row["sim_first_service_p50_s"] == pytest.approx(0.0139, abs=2e-4)
