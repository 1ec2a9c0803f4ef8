"""The routers-inside-HADIS figure (fig13) on a small bundle in quick mode."""

from __future__ import annotations

from dataclasses import replace

from bundle_factory import make_bundle

from experiments.figures import fig13_routers
from experiments.figures.context import VERDICTS, FigureContext
from simulator.config import SimConfig


def test_fig13_compares_routers_inside_hadis(tmp_path):
    bundle = make_bundle(
        base_latency_s={"m0": 0.5, "m1": 1.5, "m2": 4.0, "m3": 8.0},
        fid_alone={"m0": 30.0, "m1": 25.0, "m2": 21.0, "m3": 20.0},
        n_prompts=300,
    )
    ctx = FigureContext("small", bundle, tmp_path, quick=True)
    ctx.base = replace(SimConfig(), n_workers=6, slo_s=30.0)
    data = fig13_routers.compute(ctx)
    assert list(data.router) == list(fig13_routers.ROUTERS[True])
    assert (data.arrivals == data.arrivals.iloc[0]).all()  # the same trace for every router
    assert data.fid_method.eq("table").all()  # no generative model behind a hand-made bundle
    assert data.router_bypass_share.nunique() > 1  # the routers route differently
    fig13_routers.plot(data, tmp_path / "fig13.png")
    assert (tmp_path / "fig13.png").stat().st_size > 10_000
    for claim in fig13_routers.claims(data):
        assert claim.verdict in VERDICTS
