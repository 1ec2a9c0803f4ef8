"""The routers-inside-HADIS figure (fig13) on a small bundle in quick mode."""

from __future__ import annotations

from bundle_factory import small_figure_context

from experiments.figures import fig13_routers
from experiments.figures.context import VERDICTS


def test_fig13_compares_routers_inside_hadis(tmp_path):
    ctx = small_figure_context(tmp_path)
    data = fig13_routers.compute(ctx)
    assert list(data.router) == list(fig13_routers.ROUTERS[True])
    assert (data.arrivals == data.arrivals.iloc[0]).all()  # the same trace for every router
    assert data.fid_method.eq("table").all()  # no generative model behind a hand-made bundle
    assert data.router_bypass_share.nunique() > 1  # the routers route differently
    fig13_routers.plot(data, tmp_path / "fig13.png")
    assert (tmp_path / "fig13.png").stat().st_size > 10_000
    for claim in fig13_routers.claims(data):
        assert claim.verdict in VERDICTS
