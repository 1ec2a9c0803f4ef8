"""fig02b: fig02's three-model cascades run in the simulator as static three-stage cascades,
next to their table-based values (stage shares, FID, latency), with the agreement rule."""

from __future__ import annotations

import io
import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from bundle_factory import small_figure_context
from matplotlib.figure import Figure

from experiments.figures import fig02_frontier as frontier
from experiments.figures import fig02b_three_stage as three
from experiments.figures import seeds
from experiments.figures.context import FigureContext
from experiments.figures.registry import figure_module
from experiments.inputs import resolve_bundle
from simulator.baselines import StaticCascadePolicy
from simulator.default_bundle import generative_model
from simulator.policy import PolicyContext


@pytest.fixture(scope="module")
def ctx(tmp_path_factory) -> FigureContext:
    return FigureContext(
        "default", resolve_bundle("default"), tmp_path_factory.mktemp("fig02b"), quick=True
    )


@pytest.fixture(scope="module")
def data(ctx) -> pd.DataFrame:
    return three.compute(ctx)


def test_registered_after_fig02():
    assert figure_module("fig02b") is three
    assert three.NAME == "fig02b" and three.claims(pd.DataFrame()) == []


def test_quick_compute_has_one_row_per_frontier_configuration(ctx, data):
    assert list(data.columns) == three.COLUMNS
    assert list(data["config"]) == list(range(1, three.N_CONFIGS_QUICK + 1))
    # every configuration is a point of fig02's three-model frontier (quick grid)
    table = frontier.three_model_table(ctx.bundle, *generative_model(ctx.bundle), 0.25)
    front = table[frontier.frontier_mask(table["latency_s"].to_numpy(), table["fid"].to_numpy())]
    keys = ["cascade", "router_ratio", "disc_ratio", "disc_ratio_2"]
    assert len(data[keys].merge(front[keys])) == len(data)
    assert data["latency_s_table"].is_monotonic_increasing
    values = [f"{m}_{p}" for m in three.METRICS for p in ("table", "sim", "diff", "diff_ci95")]
    assert np.isfinite(data[[*values, "p99_latency_s_sim", "rate_qps"]].to_numpy()).all()
    assert (data["n_seeds"] == 3).all() and set(data["fid_method"]) == {"exact"}
    assert set(data["fid_agreement"]) <= {three.AGREE, three.DIFFER, three.UNDECIDED}
    # Poisson traces of QUERIES_QUICK queries at a load the cluster serves
    assert (abs(data["arrivals"] - three.QUERIES_QUICK) < 5 * math.sqrt(three.QUERIES_QUICK)).all()
    assert (data["slo_violation_ratio_sim"] < 0.01).all()
    # the table's third stage is reached through the second, not only by the bypass
    assert (data["stage3_share_table"] > 1 - data["stage1_share_table"] + 0.05).all()


def test_simulated_stage_shares_equal_the_tables_within_sampling_error(data):
    """At this low load nothing is dropped: each stage's share of the simulated queries is the
    table's share of the prompts up to the trace's prompt sample (a simulator that stopped at
    the second stage would put the third stage's share at the bypass alone)."""
    n = data["n_seeds"] * data["arrivals"]
    for stage in three.STAGES:
        p = data[f"{stage}_table"]
        sampling = np.sqrt(p * (1 - p) / n)
        assert (abs(data[f"{stage}_diff"]) <= 4 * sampling + 1e-12).all(), stage
    from_second = data["stage3_share_sim"] - (1 - data["stage1_share_sim"])
    assert (from_second > 0.05).all()
    # FID: the same generative model on the same routing, up to the prompt sample
    assert (abs(data["fid_diff"]) < 0.5).all()
    # latency: the simulator adds queueing, batching and the router/discriminator costs
    assert (data["latency_s_diff"] > 0).all()
    assert (data["p99_latency_s_sim"] > data["latency_s_sim"]).all()


def test_rate_keeps_the_busiest_stage_at_the_load(ctx, data):
    latency = frontier.batch1_latency_s(ctx.bundle)
    model = generative_model(ctx.bundle)
    names = list(ctx.bundle.model_names)
    for row in data.itertuples():
        stages = row.cascade.split(" → ")
        ratios = (row.router_ratio, row.disc_ratio, row.disc_ratio_2)
        shares = frontier.three_model_point(
            ctx.bundle, *model, tuple(names.index(m) for m in stages), ratios
        )
        context = PolicyContext(
            ctx.bundle,
            n_workers=ctx.base.n_workers,
            slo_s=ctx.base.slo_s,
            options=three.policy_options(row),
        )
        workers = StaticCascadePolicy(context).plan(None).workers
        utilisation = [
            row.rate_qps * shares[stage] * latency[names.index(m)] / workers[m]
            for stage, m in zip(three.STAGES, stages)
        ]
        assert max(utilisation) == pytest.approx(three.LOAD, rel=0.01)


def test_a_simulated_point_is_deterministic(ctx, data):
    row = next(data.itertuples())
    spec = f"poisson:rate={row.rate_qps:g},duration=300"
    first = three.simulated_point(seeds.replicate_contexts(ctx)[1], row, spec)
    again = three.simulated_point(seeds.replicate_contexts(ctx)[1], row, spec)
    assert first == again and first["arrivals"] > 0


def test_agreement_rule():
    error = 0.095
    assert three.fid_agreement(0.01, 0.05, error) == three.AGREE
    assert three.fid_agreement(0.3, 0.1, error) == three.DIFFER
    assert three.fid_agreement(-0.3, 0.1, error) == three.DIFFER
    assert three.fid_agreement(0.05, 0.1, error) == three.UNDECIDED
    assert three.fid_agreement(0.0, math.inf, error) == three.UNDECIDED
    frame = pd.DataFrame(
        {
            "config": [1, 2, 3],
            "latency_s_sim": [4.0, 10.0, 13.0],
            "fid_sim": [24.8, 21.1, 20.6],
            "fid_agreement": [three.AGREE] * 3,
        }
    )
    assert three.frontier_agreement(frame)[0] == three.AGREE
    undecided = frame.assign(fid_agreement=[three.AGREE, three.UNDECIDED, three.AGREE])
    verdict, why = three.frontier_agreement(undecided)
    assert verdict == three.UNDECIDED and "configuration(s) 2" in why
    differs = frame.assign(fid_agreement=[three.AGREE, three.UNDECIDED, three.DIFFER])
    verdict, why = three.frontier_agreement(differs)
    assert verdict == three.DIFFER and "configuration(s) 3" in why
    dominated = frame.assign(fid_sim=[24.8, 21.1, 21.5])  # config 3: slower and worse than 2
    verdict, why = three.frontier_agreement(dominated)
    assert verdict == three.DIFFER and "dominated in simulation: configuration(s) 3" in why


def test_report_and_plot_from_the_csv(data):
    read_back = pd.read_csv(io.StringIO(data.to_csv(index=False)))
    lines = three.report_lines(read_back)
    rows = [line for line in lines if line.startswith("| ") and line[2].isdigit()]
    assert len(rows) == len(data)
    verdict, _ = three.frontier_agreement(read_back)
    assert any(f"three-model frontier: {verdict}**" in line for line in lines)
    assert any("True by construction" in line and "generative model" in line for line in lines)
    assert any("± 0.095 FID" in line for line in lines)
    fig = three.plot(read_back)
    assert isinstance(fig, Figure) and len(fig.axes) == 3
    assert all(ax.has_data() for ax in fig.axes)
    plt.close("all")


def test_bundle_without_generative_model_is_not_comparable(tmp_path):
    small = small_figure_context(tmp_path)
    data = three.compute(small)
    assert data.empty and list(data.columns) == three.COLUMNS
    assert three.report_lines(data)[0].startswith("Not comparable:")
    fig = three.plot(data)
    assert all(ax.texts for ax in fig.axes)
    plt.close("all")
