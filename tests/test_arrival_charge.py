"""The arrival charge's estimator (`serving.arrival_charge`) on batches made with a known
charge, and where it has nothing to fit."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from serving.arrival_charge import (
    applied_charge_ms,
    arrival_charge_fit,
    arrivals_during,
)


def charged_run(charge_s: float, seed: int, rate_qps: float = 40.0, n: int = 600):
    """Poisson arrivals and two workers' batches of one (models a and b, base 20 and 45 ms with
    a lognormal spread), each prolonged by `charge_s` per arrival while it runs."""
    rng = np.random.default_rng(seed)
    arrival_s = np.cumsum(rng.exponential(1 / rate_qps, n))
    rows = []
    for worker, (model, base_s) in enumerate((("a", 0.020), ("b", 0.045))):
        start = float(rng.uniform(0, 0.1))
        while start < arrival_s[-1] - 1.0:
            end = start + base_s * math.exp(0.1 * rng.standard_normal())
            counted = 0
            while True:  # arrivals during the batch, its extensions' too
                arrived = int(np.searchsorted(arrival_s, end) - np.searchsorted(arrival_s, start))
                if arrived == counted:
                    break
                end += (arrived - counted) * charge_s
                counted = arrived
            rows.append((worker, model, start, end - start, 1))
            start = end + float(rng.exponential(0.03))
    batches = pd.DataFrame(rows, columns=["worker", "model", "start_s", "service_s", "batch_size"])
    return arrival_s, batches


def test_a_known_charge_is_recovered_within_its_error():
    runs = [charged_run(0.003, seed) for seed in range(3)]
    fit = arrival_charge_fit(runs)
    assert fit["runs"] == 3 and fit["groups"] == 6
    assert fit["batches"] == sum(len(b) for _, b in runs) and fit["arrivals_counted"] > 300
    assert 0 < fit["charge_se_ms"] < 0.5
    assert abs(fit["charge_ms"] - 3.0) < 3 * fit["charge_se_ms"]
    none = arrival_charge_fit([charged_run(0.0, seed) for seed in range(3)])
    assert abs(none["charge_ms"]) < 3 * none["charge_se_ms"]


def test_the_window_is_the_groups_shortest_batch():
    batches = pd.DataFrame(
        {
            "model": ["a", "a", "b"],
            "batch_size": [1, 1, 1],
            "start_s": [0.0, 1.0, 0.0],
            "service_s": [0.5, 0.2, 0.9],
        }
    )
    window, counts = arrivals_during(batches, np.array([0.1, 0.3, 0.6, 1.1, 1.25, np.nan]))
    np.testing.assert_allclose(window, [0.2, 0.2, 0.9])
    assert counts.tolist() == [1, 1, 3]


def test_no_spread_in_the_counts_is_no_fit_and_no_charge():
    batches = pd.DataFrame(
        {"model": "a", "batch_size": 1, "start_s": [0.0, 1.0, 2.0, 3.0], "service_s": 0.1}
    )
    fit = arrival_charge_fit([(np.array([5.0]), batches)])
    assert fit["batches"] == 4 and math.isnan(fit["charge_ms"]) and math.isnan(fit["charge_se_ms"])
    assert applied_charge_ms(fit) == 0.0
    assert arrival_charge_fit([(np.array([5.0]), batches.iloc[:2])])["batches"] == 0  # < 3
    assert applied_charge_ms({"charge_ms": -0.4}) == 0.0  # never shortens a batch
    assert applied_charge_ms({"charge_ms": 1.25}) == pytest.approx(1.25)


# ------------------------------------------------------------- `t2isim bundle arrival-charge`


def charge_batches(run, charge_s: float, seed: int, after_s: float = 0.0) -> None:
    """Replace a fake run's batches.csv with 80 light batches of one (0.1 s, a 5% spread)
    from `after_s` on, each `charge_s` longer per arrival in its first 90 ms."""
    from test_service_times import LIGHT

    rng = np.random.default_rng(seed)
    arrival_s = np.sort(pd.read_parquet(run / "queries.parquet")["arrival_s"].to_numpy())
    start = np.sort(rng.uniform(after_s, after_s + 10.0, 80))
    early = np.searchsorted(arrival_s, start + 0.09) - np.searchsorted(arrival_s, start)
    service = 0.1 * np.exp(0.05 * rng.standard_normal(80)) + charge_s * early
    batches = {"worker": 0, "model": LIGHT, "start_s": start, "service_s": service}
    batches |= {"batch_size": 1, "judged": True}
    pd.DataFrame(batches).to_csv(run / "batches.csv", index=False)


def test_cli_arrival_charge_writes_the_runs_bundle_with_their_charge(tmp_path):
    from test_service_times import CONFIG, fake_real_run
    from typer.testing import CliRunner

    from experiments.cli import app
    from experiments.inputs import resolve_bundle
    from simulator.bundle import load_bundle

    bundle, sim = resolve_bundle("default"), CONFIG.to_dict()
    runs = [tmp_path / f"real-{k}" for k in (1, 2, 3)]
    for k, run in enumerate(runs):
        fake_real_run(bundle, run, sim)
        charge_batches(run, 0.040, seed=k)
    runner = CliRunner()
    out = tmp_path / "charged"
    result = runner.invoke(app, ["bundle", "arrival-charge", *map(str, runs), "--out", str(out)])
    assert result.exit_code == 0, result.output
    charged = load_bundle(out)
    fit = charged.meta["arrival_charge"]
    assert fit["run_folders"] == [str(r) for r in runs] and fit["batches"] == 240
    assert abs(fit["charge_ms"] - 40.0) < 3 * fit["charge_se_ms"] < 15
    assert charged.arrival_charge_s == pytest.approx(round(fit["charge_ms"], 6) / 1000)
    assert result.output.splitlines()[0] == (
        f"arrival charge {fit['charge_ms']:.3g} ms per arrival (standard error "
        f"{fit['charge_se_ms']:.2g} ms) over 240 batches of 3 runs"
    )
    # bad input: one line, exit 2, nothing written
    flat, shortened = tmp_path / "flat", tmp_path / "shortened"
    for folder, charge_s, after_s in ((flat, 0.0, 100.0), (shortened, -0.05, 0.0)):
        fake_real_run(bundle, folder, sim)
        charge_batches(folder, charge_s, seed=9, after_s=after_s)  # flat: after every arrival
    fake_real_run(bundle, tmp_path / "old", sim, with_batches=False)
    broken = tmp_path / "broken"
    fake_real_run(bundle, broken, sim)
    (broken / "queries.parquet").write_text("not parquet")
    cases = [
        (tmp_path / "old", "no batches.csv"),
        (broken, "queries.parquet: cannot read its arrival_s"),
        (flat, "give no arrival charge: no batch's count of arrivals varies"),
        (shortened, "give an arrival charge below 0"),
    ]
    for folder, named in cases:
        result = runner.invoke(
            app, ["bundle", "arrival-charge", str(folder), "--out", str(tmp_path / "x")]
        )
        assert result.exit_code == 2, result.output
        assert named in result.output and result.output.count("\n") == 1
        assert not (tmp_path / "x").exists()
