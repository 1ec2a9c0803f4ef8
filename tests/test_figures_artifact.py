"""The reproduction report on the HADIS artifact's real measurements (needs ../shared)."""

from __future__ import annotations

from typer.testing import CliRunner

from experiments.cli import app


def test_report_on_the_imported_artifact(hadis_artifact, tmp_path):
    runner = CliRunner()
    bundle = tmp_path / "hadis"
    result = runner.invoke(app, ["import", "hadis-artifact", str(hadis_artifact), str(bundle)])
    assert result.exit_code == 0, result.output
    out = tmp_path / "figs"
    result = runner.invoke(
        app,
        ["figures", "--quick", "--only", "fig07,fig09", "--bundle", str(bundle), "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    report = (out / "REPRODUCTION.md").read_text()
    assert "Bundle: `hadis-artifact`" in report
    assert "SLO violations reduced vs Proteus" in report and "HADIS lower FID than Random" in report
    for name in ("fig07", "fig09"):
        assert (out / f"{name}.png").stat().st_size > 10_000
