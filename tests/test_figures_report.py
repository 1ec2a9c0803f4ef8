"""The report writer: claims tables, and verdict stability across replicate seeds."""

from __future__ import annotations

from bundle_factory import small_figure_context

from experiments.figures import verdicts as v
from experiments.figures.context import VERDICTS
from experiments.figures.report import make_figures, replicate_verdicts, write_report


def test_report_with_replicate_seeds(tmp_path):
    ctx = small_figure_context(tmp_path)
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
    # fig12's one claim is true by construction: listed apart, not counted as evidence
    assert "Verdicts on 0 claims that are evidence: 0 reproduced" in plain
    assert (
        "Not counted as evidence: 0 within estimator error, 1 by construction, 0 not comparable."
        in plain
    )
    assert v.RULES in plain and "| by construction |" in plain
