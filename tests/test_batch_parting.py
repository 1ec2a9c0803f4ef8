"""Where a real run's batches and the simulation's part (`serving.batch_parting`), and the
simulated batches every validation writes beside the real ones."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from experiments.inputs import resolve_bundle, resolve_trace
from serving.batch_parting import (
    AMBIGUOUS,
    NOT_SERVED,
    PARTING_COLUMNS,
    ROUTING_COLUMNS,
    first_workers,
    parting_table,
    parting_text,
    routing_text,
    simulated_batches,
    validation_parting,
    validation_routing,
)
from serving.service_times import BATCH_COLUMNS_REQUIRED, read_batches_file
from serving.setup import ServeSetup
from serving.validate import run_validation
from simulator.results import write_run
from simulator.run import run_simulation
from tests.test_validation import CONFIG, LIGHT, as_served
from tests.test_validation import OPTIONS as VALIDATION_OPTIONS

HEAVY = "SD3.5-Large"  # 2.7 s a query: a busy heavy worker, and drops
OPTIONS = {**VALIDATION_OPTIONS, "heavy": HEAVY}
TRACE = "constant:rate=6,duration=20"  # more than the heavy worker serves: some drop


def batches(rows: list[tuple]) -> pd.DataFrame:
    """(worker, model, start_s, batch_size) rows as a batches table."""
    table = pd.DataFrame(rows, columns=["worker", "model", "start_s", "batch_size"])
    return table.assign(service_s=0.1, judged=False)[list(BATCH_COLUMNS_REQUIRED)]


REAL = batches([(0, "A", 0.0, 1), (1, "A", 0.1, 1), (0, "A", 1.0, 2), (0, "B", 2.0, 1)])


def test_identical_batches_never_part_and_keep_time_exactly():
    table = parting_table(REAL, REAL.copy())
    assert list(table.columns) == list(PARTING_COLUMNS[2:])
    assert table["worker"].tolist() == [0, 1]
    assert table["matched_batches"].tolist() == [3, 1]
    assert table["start_gap_p50_ms"].tolist() == [0.0, 0.0]
    assert not table["parted"].any() and table["parting_s"].isna().all()
    assert table["run_batch_size"].tolist() == [0, 0] == table["against_batch_size"].tolist()


def test_a_batch_of_another_size_parts_its_worker_at_the_earlier_start():
    sim = batches([(0, "A", 0.002, 1), (1, "A", 0.1, 1), (0, "A", 0.995, 1), (0, "B", 2.0, 1)])
    table = parting_table(REAL, sim).set_index("worker")
    w0 = table.loc[0]
    assert w0["parted"] and w0["matched_batches"] == 1
    assert w0["start_gap_p50_ms"] == pytest.approx(2.0)
    assert w0["start_lag_p50_ms"] == pytest.approx(-2.0)  # the run's batch started first
    assert w0["parting_s"] == pytest.approx(0.995)  # the other's batch started first
    assert (w0["run_model"], w0["run_batch_size"], w0["run_start_s"]) == ("A", 2, 1.0)
    assert (w0["against_model"], w0["against_batch_size"]) == ("A", 1)
    assert not table.loc[1, "parted"]  # worker 1 served the same batch on both sides


def test_an_extra_batch_on_one_side_parts_where_the_other_served_no_more():
    sim = REAL[REAL["start_s"] < 2.0]  # worker 0's model B batch never ran
    w0 = parting_table(REAL, sim).set_index("worker").loc[0]
    assert w0["parted"] and w0["matched_batches"] == 2 and w0["parting_s"] == 2.0
    assert (w0["against_model"], w0["against_batch_size"]) == ("", 0)
    assert np.isnan(w0["against_start_s"])
    # a worker only one side used parts at its first batch
    only_real = parting_table(REAL, REAL[REAL["worker"] == 0]).set_index("worker").loc[1]
    assert only_real["parted"] and only_real["matched_batches"] == 0
    assert np.isnan(only_real["start_gap_p50_ms"]) and only_real["parting_s"] == 0.1


def test_batches_of_one_model_and_size_part_where_their_starts_drift_half_a_batch_apart():
    """Every batch alike, one side with one batch more at the start: index by index they
    would match to the end; by start they part at that first batch."""
    run = batches([(0, "A", s, 1) for s in (0.0, 0.1, 0.2, 0.3)])
    against = batches([(0, "A", s, 1) for s in (0.1, 0.2, 0.3)])
    w0 = parting_table(run, against).loc[0]
    assert w0["parted"] and w0["matched_batches"] == 0 and w0["parting_s"] == 0.0
    # 40 ms apart with 100 ms batches: still the same batches
    late = batches([(0, "A", s + 0.04, 1) for s in (0.0, 0.1, 0.2, 0.3)])
    assert not parting_table(run, late)["parted"].any()


def test_the_note_names_each_runs_first_parting_and_each_sides_own_spread():
    sim = batches([(0, "A", 0.0, 1), (1, "A", 0.1, 1), (0, "A", 1.0, 1), (0, "B", 2.0, 1)])
    parting = validation_parting({"real-1": REAL, "real-2": sim}, sim, [sim, REAL])
    assert list(parting.columns) == list(PARTING_COLUMNS)
    pairs = parting[["run", "against"]].drop_duplicates().apply(tuple, axis=1).tolist()
    assert pairs == [
        ("real-1", "sim"),
        ("real-2", "sim"),
        ("real-2", "real-1"),
        ("sim-replicate-1", "sim"),
        ("sim-replicate-2", "sim"),
    ]
    text = parting_text(parting, "DIR/sim")
    assert text.startswith("Batch by batch against DIR/sim (parting.csv): ")
    assert "real-1 at 1.000 s on worker 0 (real A x2 at 1.000 s, simulated A x1 at 1.000 s" in text
    assert "1 of 2 workers part" in text
    assert "real-2 never parts (4 batches)" in text
    assert "(0.00 ms later as a signed median)." in text
    assert text.endswith(
        " Each side's own runs part from real-1: real-2 at 1.000 s; from DIR/sim: "
        "sim-replicate-1 never, sim-replicate-2 at 1.000 s."
    )
    one_real = validation_parting({"real-1": REAL}, sim)
    assert parting_text(one_real, "DIR/sim").endswith("signed median).")  # no spread to give


def test_a_querys_worker_is_its_first_batchs_by_start_and_model():
    batches = pd.DataFrame(
        {
            "worker": [0, 1, 2, 3],
            "model": ["A", "B", "A", "A"],
            "start_s": [1.0, 1.0, 2.0000001, 2.000004],  # 9 digits, as batches.csv keeps them
        }
    )
    queries = pd.DataFrame(
        {
            "start_s": [1.0, 1.0, 2.0, np.nan, 5.0, 2.0000003],
            "first_model": ["A", "B", "A", None, "A", "B"],
        }
    )
    workers = first_workers(queries, batches)
    # workers 2 and 3 both started a batch of A at 2.000 s (within the tolerance): ambiguous;
    # a query never served, or whose batch is not in the table, has none
    expected = [0, 1, AMBIGUOUS, NOT_SERVED, NOT_SERVED, NOT_SERVED]
    assert workers.tolist() == expected


def test_routing_counts_the_queries_on_another_worker_and_names_the_first():
    arrival_s = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    real = {
        "real-1": np.array([0, 1, 2, 3, NOT_SERVED]),
        "real-2": np.array([0, 1, 3, 2, 1]),
    }
    sim = np.array([0, 1, 2, AMBIGUOUS, 1])
    routing = validation_routing(real, sim, arrival_s, [np.array([0, 1, 2, 3, 1])])
    assert list(routing.columns) == list(ROUTING_COLUMNS)
    rows = routing.set_index(["run", "against"])
    assert rows.loc[("real-1", "sim"), ["compared", "other_worker"]].tolist() == [3, 0]
    assert rows.loc[("real-1", "sim"), "first_query"] == -1
    second = rows.loc[("real-2", "sim")]
    assert (second["compared"], second["other_worker"], second["first_query"]) == (4, 1, 2)
    assert (second["run_worker"], second["against_worker"]) == (3, 2)
    among = rows.loc[("real-2", "real-1")]
    assert (among["compared"], among["other_worker"], among["first_query"]) == (4, 2, 2)
    assert rows.loc[("sim-replicate-1", "sim"), "other_worker"] == 0
    text = routing_text(routing, "DIR/sim")
    assert text.startswith("Query by query, each one's first worker (routing.csv): ")
    assert "real-1 against DIR/sim: none of 3" in text
    assert "real-2 against real-1: 2 of 4 queries on another worker, the first query 2" in text


@pytest.fixture(scope="module")
def bundle():
    return resolve_bundle("default")


def simulate(bundle, trace: str = TRACE):
    return run_simulation(
        bundle, resolve_trace(trace, bundle, CONFIG.seed), "static-cascade", CONFIG, OPTIONS
    )


def test_simulated_batches_serve_every_stage_of_every_query_once(bundle):
    """Each query is served once per stage it reached: the batches' sizes add up to the
    queries served a first time plus those escalated and not dropped after, each worker's
    batches do not overlap, and the cascade's discriminator judges the light model's."""
    sim = simulate(bundle)
    table = simulated_batches(sim.raw, bundle.model_names)
    assert list(table.columns) == list(BATCH_COLUMNS_REQUIRED)
    raw = sim.raw
    assert raw.dropped.any() and raw.escalated.any()  # the count below is not trivial
    served_first = (raw.first_model >= 0).sum()
    assert table["batch_size"].sum() == served_first + (raw.escalated & ~raw.dropped).sum()
    assert (np.diff(table["start_s"].to_numpy()) >= 0).all()
    for _, mine in table.groupby("worker"):
        ends = (mine["start_s"] + mine["service_s"]).to_numpy()
        assert (mine["start_s"].to_numpy()[1:] >= ends[:-1] - 1e-12).all()
    judged = table.groupby("model")["judged"].all()
    assert judged[LIGHT] and not judged[HEAVY]


def test_validate_writes_the_simulated_batches_and_where_each_real_run_parts(bundle, tmp_path):
    """Two real runs (a simulation standing in, with the hops validate will measure): one
    served the simulation's own batches and never parts from DIR/sim; the other served one
    query more in worker 1's third batch, and parts there."""
    fake = simulate(bundle)
    served = simulated_batches(fake.raw, bundle.model_names)
    changed = served.copy()
    k = changed.index[changed["worker"] == 1][2]
    changed.loc[k, "batch_size"] += 1
    for run, table in (("real-1", served), ("real-2", changed)):
        queries = fake.queries.assign(visits=1, resends=0, hops_s=0.0)
        summary = {**fake.summary, "trace_spec": TRACE}
        write_run(tmp_path / run, queries, fake.timeseries, summary, as_served(fake), [])
        table.to_csv(tmp_path / run / "batches.csv", index=False, float_format="%.9g")
    setup = ServeSetup("default", "static-cascade", OPTIONS, CONFIG.to_dict(), dispatch="jsq")
    run_validation(setup, TRACE, tmp_path, reuse_real=True, log=lambda s: None, sim_repeats=5)
    written = read_batches_file(tmp_path / "sim" / "batches.csv", bundle.model_names)
    pd.testing.assert_frame_equal(written, served, check_dtype=False, rtol=1e-8)
    parting = pd.read_csv(tmp_path / "parting.csv")
    against_sim = parting[parting["against"] == "sim"]
    first = against_sim[against_sim["run"] == "real-1"]
    assert not first["parted"].any()
    assert (first["start_gap_p50_ms"] < 1e-3).all()  # the real starts as written: 9 digits
    second = against_sim[(against_sim["run"] == "real-2") & against_sim["parted"]]
    assert second["worker"].tolist() == [1]
    assert float(second["parting_s"].iloc[0]) == pytest.approx(served.loc[k, "start_s"])
    # the sides' own spread: real-2 against real-1, and the 4 replicates against DIR/sim
    assert parting.loc[parting["against"] == "real-1", "run"].unique().tolist() == ["real-2"]
    replicates = parting.loc[parting["run"].str.startswith("sim-replicate-"), "run"].unique()
    assert len(replicates) == 4
    routing = pd.read_csv(tmp_path / "routing.csv").set_index(["run", "against"])
    # the same queries on the same workers: only a batch's size changed in real-2
    served_queries = (fake.raw.first_model >= 0).sum()
    assert routing.loc[("real-1", "sim"), "compared"] == served_queries
    assert routing.loc[("real-1", "sim"), "other_worker"] == 0
    assert routing.loc[("real-2", "real-1"), "other_worker"] == 0
    note = (tmp_path / "fidelity.md").read_text()
    assert "real-1 never parts" in note and "real-2 at " in note
    assert "Query by query, each one's first worker (routing.csv): " in note
    assert "Each side's own runs part from real-1: real-2 " in note
