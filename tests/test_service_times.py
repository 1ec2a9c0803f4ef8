"""Service times measured on the serving path as a bundle's latency profile
(`serving.service_times`): the discriminator's charge taken out, a ratio per profiled batch
size with enough batches, the nearest size's ratio elsewhere, and a simulation charging the
measured medians back."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from experiments.inputs import resolve_bundle
from serving.service_times import (
    MIN_BATCHES,
    discriminator_charge_s,
    read_batches,
    served_latency_table,
    with_served_latency,
)
from simulator.config import SimConfig

LIGHT, HEAVY = "SDXL-Lightning", "SD3.5-Large-Turbo"
CONFIG = SimConfig(time_scale=0.1, disc_cost_s=0.05)  # 5 ms per judged image, as served


@pytest.fixture(scope="module")
def bundle():
    return resolve_bundle("default")


def profile_p50(bundle, model: str, size: int) -> float:
    rows = bundle.latency[(bundle.latency.model == model) & (bundle.latency.batch_size == size)]
    return float(rows["latency_p50_s"].iloc[0])


def batches_of(bundle, model: str, size: int, count: int, ratio: float, judged: bool):
    """`count` batches of `size` on `model` served `ratio` x its profile, plus the
    discriminator's charge when judged."""
    model_s = profile_p50(bundle, model, size) * CONFIG.time_scale * ratio
    charge = CONFIG.disc_cost_s * CONFIG.time_scale * size * judged
    return pd.DataFrame(
        {
            "worker": range(count),
            "model": model,
            "start_s": np.arange(count, dtype=float),
            "service_s": model_s + charge,
            "batch_size": size,
            "judged": judged,
        }
    )


def test_the_ratio_of_each_size_with_enough_batches_else_the_nearest(bundle):
    sizes = bundle.batch_sizes[LIGHT]
    assert sizes[:3] == (1, 2, 4)
    batches = pd.concat(
        [
            batches_of(bundle, LIGHT, 1, MIN_BATCHES, 1.5, judged=True),
            batches_of(bundle, LIGHT, 4, MIN_BATCHES, 1.2, judged=True),
            batches_of(bundle, LIGHT, 2, MIN_BATCHES - 1, 9.0, judged=True),  # too few
            batches_of(bundle, HEAVY, 1, MIN_BATCHES + 3, 2.0, judged=False),
        ]
    )
    table = served_latency_table(bundle, batches, CONFIG, uses_discriminator=True)
    light = table[table.model == LIGHT].set_index("batch_size")
    assert light.loc[1, "ratio"] == pytest.approx(1.5)
    assert light.loc[2, "ratio"] == pytest.approx(1.5)  # 1 and 4 equally near: the smaller
    assert light.loc[4, "ratio"] == pytest.approx(1.2)
    np.testing.assert_allclose(light.loc[[s for s in sizes if s >= 4], "ratio"], 1.2)
    assert light.loc[2, "served_batches"] == MIN_BATCHES - 1
    np.testing.assert_allclose(light["latency_p50_s"], light["profiled_p50_s"] * light["ratio"])
    heavy = table[table.model == HEAVY]
    np.testing.assert_allclose(heavy["ratio"], 2.0)
    others = table[~table.model.isin([LIGHT, HEAVY])]
    assert len(others) and (others["ratio"] == 1.0).all()  # never served: its profile
    p95 = bundle.latency.set_index(["model", "batch_size"])["latency_p95_s"]
    served_p95 = table.set_index(["model", "batch_size"])
    np.testing.assert_allclose(
        served_p95["latency_p95_s"], p95.loc[served_p95.index] * served_p95["ratio"]
    )


def test_the_served_bundle_charges_the_measured_median_back(bundle):
    batches = batches_of(bundle, LIGHT, 1, MIN_BATCHES, 1.5, judged=True)
    served = with_served_latency(bundle, batches, CONFIG, uses_discriminator=True)
    m = served.model_names.index(LIGHT)
    charge = discriminator_charge_s(batches, CONFIG, True)[0]
    assert served.latency_table_s[m][1] * CONFIG.time_scale + charge == pytest.approx(
        batches["service_s"].median()
    )
    assert list(served.latency.columns) == list(bundle.latency.columns)


def test_the_discriminator_charge_follows_the_simulators_rule(bundle):
    batches = pd.concat(
        [
            batches_of(bundle, LIGHT, 4, 1, 1.0, judged=True),
            batches_of(bundle, HEAVY, 2, 1, 1.0, judged=False),
        ]
    )
    disc = CONFIG.disc_cost_s * CONFIG.time_scale
    np.testing.assert_allclose(discriminator_charge_s(batches, CONFIG, True), [4 * disc, 0])
    np.testing.assert_allclose(discriminator_charge_s(batches, CONFIG, False), [0, 0])
    per_batch = SimConfig(time_scale=0.1, disc_cost_s=0.05, disc_cost_per="batch")
    np.testing.assert_allclose(discriminator_charge_s(batches, per_batch, True), [disc, disc])


def test_runs_without_batches_give_none(tmp_path):
    (tmp_path / "real-1").mkdir()
    (tmp_path / "real-2").mkdir()
    (tmp_path / "real-1" / "batches.csv").write_text("worker,model\n")
    assert read_batches([tmp_path / "real-1", tmp_path / "real-2"]) is None
    assert len(read_batches([tmp_path / "real-1"])) == 1
