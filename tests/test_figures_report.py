"""The report writer: claims tables, and verdict stability across replicate seeds."""

from __future__ import annotations

from dataclasses import replace

from bundle_factory import make_bundle

from experiments.figures.context import VERDICTS, FigureContext
from experiments.figures.report import make_figures, replicate_verdicts, write_report
from simulator.config import SimConfig


def test_report_with_replicate_seeds(tmp_path):
    bundle = make_bundle(
        base_latency_s={"m0": 0.5, "m1": 1.5, "m2": 4.0, "m3": 8.0},
        fid_alone={"m0": 30.0, "m1": 25.0, "m2": 21.0, "m3": 20.0},
        n_prompts=300,
    )
    ctx = FigureContext("small", bundle, tmp_path, quick=True)
    ctx.base = replace(SimConfig(), n_workers=6, slo_s=30.0)
    claims = make_figures(ctx, ["fig12"])
    primary_runs = dict(ctx._runs)
    replicas = replicate_verdicts(ctx, ["fig12"], seeds=[1, 2])
    assert ctx._runs == primary_runs  # replicates use their own caches
    assert set(replicas) == {(c.figure, c.claim) for c in claims["fig12"]}
    assert all(len(v) == 2 and set(v) <= set(VERDICTS) for v in replicas.values())
    report = write_report(ctx, claims, replicas).read_text()
    assert "same in other seeds" in report
    agreeing = sum(v == c.verdict for c in claims["fig12"] for v in replicas[(c.figure, c.claim)])
    assert f"{agreeing}/2" in report
    plain = write_report(ctx, claims).read_text()
    assert "same in other seeds" not in plain
