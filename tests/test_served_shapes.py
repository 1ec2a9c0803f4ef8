"""The shapes real runs measured (`serving.served_shapes`): each run's batches and hops over
their own median, pooled; sizes and hops with too few samples get none; the discriminator's
charge and queries sent again are left out."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_service_times import CONFIG, LIGHT, batches_of, bundle  # noqa: F401  (fixture)

from serving.served_shapes import compared_shapes, served_shapes, with_shapes
from serving.service_times import MIN_BATCHES
from simulator.empirical_shape import MIN_SHAPE_SAMPLES, SHAPE_LEVELS, shape_ratios
from simulator.errors import InputError

TWO_MODES = np.r_[np.full(80, 1.0), np.full(20, 2.0)]  # per 100 batches: 80 at 1x, 20 at 2x


def runs_of(bundle, levels: list[float], size: int = 1):  # noqa: F811
    """One run per level: 100 judged light batches of `size` at level x TWO_MODES."""
    return [
        pd.concat(
            [batches_of(bundle, LIGHT, size, 1, level * r, judged=True) for r in TWO_MODES],
            ignore_index=True,
        )
        for level in levels
    ]


def queries_of(hops_s: np.ndarray, visits: int = 1, resends: int = 0) -> pd.DataFrame:
    return pd.DataFrame(
        {"hops_s": hops_s, "visits": visits, "resends": resends, "counted_after_s": hops_s / 2}
    )


def test_each_runs_batches_over_its_own_median_less_the_discriminator(bundle):  # noqa: F811
    # two runs at levels 1 and 3: pooled raw times would spread x3; over each run's median
    # both are the same two modes (the discriminator's 5 ms charge taken out first)
    shapes = served_shapes(bundle, runs_of(bundle, [1.0, 3.0]), [], CONFIG, True)
    light = shapes[shapes["name"] == LIGHT]
    assert light[["kind", "batch_size"]].drop_duplicates().values.tolist() == [["latency", 1]]
    np.testing.assert_allclose(light["ratio"], shape_ratios(np.r_[TWO_MODES, TWO_MODES]))
    assert light["ratio"].min() == pytest.approx(1.0) and light["ratio"].max() == pytest.approx(2)
    assert len(light) == len(SHAPE_LEVELS)


def test_too_few_batches_or_hops_give_no_shape(bundle):  # noqa: F811
    # a run with fewer than MIN_BATCHES of a size adds none of them; a size or hop short of
    # MIN_SHAPE_SAMPLES gets no shape
    few = runs_of(bundle, [1.0])[0].iloc[: MIN_BATCHES - 1]
    assert served_shapes(bundle, [few] * 40, [], CONFIG, True).empty
    short = runs_of(bundle, [1.0])[0].iloc[: MIN_SHAPE_SAMPLES - 1]
    hops = [queries_of(np.full(MIN_SHAPE_SAMPLES - 1, 0.01))]
    shapes = served_shapes(bundle, [short], hops, CONFIG, True)
    assert shapes.empty and list(shapes.columns) == ["kind", "name", "batch_size", "level", "ratio"]


def test_hop_shapes_of_one_model_queries_never_sent_again(bundle):  # noqa: F811
    rng = np.random.default_rng(3)
    once = queries_of(0.010 * TWO_MODES)
    others = pd.concat(
        [
            queries_of(rng.uniform(0.1, 1.0, 50), visits=2),  # escalated: dispatch + escalation
            queries_of(rng.uniform(0.1, 1.0, 50), resends=1),  # sent again
        ]
    )
    shapes = served_shapes(bundle, [], [pd.concat([once, others])], CONFIG, True)
    hops = shapes[shapes["kind"] == "hop"].set_index(["name", "level"])["ratio"]
    np.testing.assert_allclose(hops.loc["dispatch"], shape_ratios(TWO_MODES))
    # the arrival hop: every counted query's counted_after_s (here half its hop)
    arrival = np.r_[once.counted_after_s, others.counted_after_s]
    np.testing.assert_allclose(hops.loc["arrival"], shape_ratios(arrival))
    assert with_shapes(bundle, shapes).hop_shape.keys() == {"dispatch", "arrival"}


def test_a_compared_validation_without_shapes_gives_none_and_a_bad_one_one_line(
    bundle,  # noqa: F811
    tmp_path,
):
    served = tmp_path / "served_latency.csv"
    assert compared_shapes(served, bundle) is None
    (tmp_path / "served_shapes.csv").write_text("kind,name,batch_size,level,ratio\nhop,x,0,0,1\n")
    with pytest.raises(InputError) as info:
        compared_shapes(served, bundle)
    assert str(info.value).startswith(f"--compare-served-latency '{served}': served_shapes.csv")
    assert "unknown hop 'x'" in str(info.value) and "\n" not in str(info.value)


def test_cli_served_latency_writes_the_measured_shapes_when_asked(bundle, tmp_path):  # noqa: F811
    from test_service_times import fake_real_run
    from typer.testing import CliRunner

    from experiments.cli import app
    from simulator.bundle import load_bundle

    run = tmp_path / "real-1"
    fake_real_run(bundle, run, CONFIG.to_dict())
    runs_of(bundle, [1.0])[0].to_csv(run / "batches.csv", index=False)
    runner = CliRunner()
    for flag in ([], ["--served-shapes"]):
        out = tmp_path / f"served{len(flag)}"
        args = ["bundle", "served-latency", str(run), "--out", str(out), *flag]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        served = load_bundle(out)
        assert served.meta["served_latency"]["served_shapes"] == bool(flag)
        assert (out / "shapes.csv").is_file() == bool(flag)
    assert f"measured shapes: {LIGHT} batch 1" in result.output  # too few queries for hops
    assert served.hop_shape == {}
    np.testing.assert_allclose(served.latency_shape[(LIGHT, 1)], shape_ratios(TWO_MODES))
