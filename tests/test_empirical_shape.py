"""Measured shapes (`simulator.empirical_shape`, a bundle's shapes.csv): the ratios and the
draw by hand, the simulator drawing a shape no lognormal has (batch times and hops), the
fallbacks, the bundle's round trip and its refusals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from bundle_factory import make_bundle

import simulator.baselines  # noqa: F401  (registers clipper-light)
from simulator.bundle import BundleError, load_bundle, validate_tables, write_bundle
from simulator.config import SimConfig
from simulator.empirical_shape import (
    SHAPE_LEVELS,
    SHAPES_FILE,
    draw_ratio,
    shape_ratios,
    shape_rows,
)
from simulator.engine import simulate
from simulator.errors import InputError
from simulator.policy import PolicyContext, make_policy

# a batch that takes its median 80% of the time and twice it otherwise: two modes, a floor at
# the median (no lognormal has either)
TWO_MODES = np.r_[np.full(800, 1.0), np.full(200, 2.0)]


def test_the_ratios_and_the_draw_by_hand():
    ratios = shape_ratios(np.arange(1.0, 102.0))  # the quantile at level i / 100 is 1 + i
    assert len(ratios) == len(SHAPE_LEVELS) == 101
    assert ratios[0] == pytest.approx(1 / 51) and ratios[50] == 1.0
    assert ratios[100] == pytest.approx(101 / 51)
    assert draw_ratio(ratios, 0.0) == ratios[0]
    assert draw_ratio(ratios, 0.505) == pytest.approx((51.5) / 51)  # halfway between levels
    assert draw_ratio(ratios, 0.999999) == pytest.approx(101 / 51, rel=1e-5)


def with_shapes(bundle, shapes: pd.DataFrame | None, overheads: dict | None = None):
    tables = {t: getattr(bundle, t) for t in ("models", "latency", "prompts", "scores", "cascades")}
    meta = {**bundle.meta, "overheads": overheads or {}}
    return validate_tables(meta, tables, shapes=shapes)


def _service_s(bundle, service_time: str, n: int = 4000, time_scale: float = 1.0):
    """One worker's batch-of-one times on light, arrivals far apart."""
    policy = make_policy("clipper-light", PolicyContext(bundle, 1, 1e5))
    config = SimConfig(
        n_workers=1, slo_s=1e5, service_time=service_time, time_scale=time_scale, seed=5
    )
    arrival_s = np.arange(n) * 10.0 * time_scale
    raw = simulate(bundle, arrival_s, np.arange(n) % bundle.n_prompts, policy, config)
    return raw.completion_s - raw.start_s, raw.start_s - arrival_s


@pytest.mark.parametrize("time_scale", [1.0, 0.1])
def test_the_simulator_draws_a_measured_shape(time_scale):
    bundle = make_bundle(base_latency_s={"light": 1.0, "heavy": 3.0})
    shaped = with_shapes(bundle, shape_rows("latency", "light", 1, shape_ratios(TWO_MODES)))
    service_s, _ = _service_s(shaped, "empirical", time_scale=time_scale)
    ratio = service_s / time_scale  # light's p50 at a batch of one is 1 s
    assert ratio.min() == pytest.approx(1.0)  # the floor
    assert np.mean(ratio > 1.5) == pytest.approx(0.2, abs=0.03)  # the second mode's share
    assert np.mean((ratio > 1.05) & (ratio < 1.95)) < 0.02  # nothing between the modes
    assert ratio.max() == pytest.approx(2.0)


def test_a_model_without_a_shape_draws_the_lognormal_and_a_bundle_without_any_is_refused():
    bundle = make_bundle(base_latency_s={"light": 1.0, "heavy": 3.0})
    tailed = bundle.latency.assign(latency_p95_s=bundle.latency["latency_p50_s"] * 1.4)
    tables = {t: getattr(bundle, t) for t in ("models", "prompts", "scores", "cascades")}
    plain = validate_tables(bundle.meta, {**tables, "latency": tailed})
    lognormal, _ = _service_s(plain, "lognormal", n=500)
    assert np.std(lognormal) > 0.1  # it did draw
    # a shape for heavy only leaves light's times the lognormal's, draw for draw
    heavy_only = with_shapes(plain, shape_rows("latency", "heavy", 1, shape_ratios(TWO_MODES)))
    assert np.array_equal(_service_s(heavy_only, "empirical", n=500)[0], lognormal)
    with pytest.raises(InputError, match="service_time 'empirical': the bundle has no measured"):
        _service_s(plain, "empirical", n=10)


def test_a_batch_size_without_a_shape_takes_the_nearest_ones():
    bundle = make_bundle(base_latency_s={"light": 1.0, "heavy": 3.0}, batch_sizes=(1, 2, 4))
    shaped = with_shapes(bundle, shape_rows("latency", "light", 4, shape_ratios(TWO_MODES)))
    service_s, _ = _service_s(shaped, "empirical", n=1000)  # batches of one: size 4's shape
    assert np.mean(service_s > 1.5) == pytest.approx(0.2, abs=0.04)
    assert service_s.min() == pytest.approx(1.0)


def test_a_hop_draws_its_measured_shape_and_others_keep_the_lognormal():
    bundle = make_bundle(base_latency_s={"light": 1.0, "heavy": 3.0})
    overheads = {"dispatch_overhead_ms": 30.0, "dispatch_overhead_p95_ms": 90.0}
    hop = shape_rows("hop", "dispatch", 0, shape_ratios(TWO_MODES))
    _, waited_s = _service_s(with_shapes(bundle, hop, overheads), "deterministic", n=2000)
    # the dispatch hop (clipper-light has no router): 30 ms 80% of the time, else 60 ms
    hop_ms = waited_s * 1e3
    assert hop_ms.min() == pytest.approx(30.0, rel=1e-6)
    assert np.mean(hop_ms > 45.0) == pytest.approx(0.2, abs=0.03)
    assert hop_ms.max() == pytest.approx(60.0, rel=1e-6)
    # without the shape: the lognormal through 30 and 90 ms, below the median too
    _, plain_s = _service_s(with_shapes(bundle, None, overheads), "deterministic", n=2000)
    plain_ms = plain_s * 1e3
    assert np.percentile(plain_ms, 5) == pytest.approx(30.0 * 30.0 / 90.0, rel=0.1)


def test_shapes_round_trip_and_enter_the_content_hash(tmp_path):
    bundle = make_bundle()
    shapes = pd.concat(
        [
            shape_rows("latency", "light", 2, shape_ratios(TWO_MODES)),
            shape_rows("hop", "dispatch", 0, shape_ratios(np.arange(1.0, 50.0))),
        ],
        ignore_index=True,
    )
    shaped = with_shapes(bundle, shapes)
    first = write_bundle(shaped, tmp_path / "a")
    assert (first / SHAPES_FILE).is_file()
    loaded = load_bundle(first)
    assert set(loaded.latency_shape) == {("light", 2)} and set(loaded.hop_shape) == {"dispatch"}
    np.testing.assert_allclose(loaded.hop_shape["dispatch"], shaped.hop_shape["dispatch"])
    second = write_bundle(loaded, tmp_path / "b")
    assert (first / SHAPES_FILE).read_bytes() == (second / SHAPES_FILE).read_bytes()
    assert loaded.content_hash() == load_bundle(second).content_hash() != bundle.content_hash()
    assert not (write_bundle(bundle, tmp_path / "c") / SHAPES_FILE).exists()


def cell(row: int, column: str, value):
    """A mutation of a good shape: one cell set to `value`."""

    def mutate(d: pd.DataFrame) -> pd.DataFrame:
        d = d.astype({column: object})
        d.loc[row, column] = value
        return d

    return mutate


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (cell(0, "kind", "latencies"), "row 1, column 'kind'"),
        (lambda d: d.assign(name="ghost"), "row 1, column 'name': unknown model 'ghost'"),
        (lambda d: d.assign(batch_size=3), "row 1, column 'batch_size': 3 is not"),
        (cell(7, "ratio", -1.0), "row 8, column 'ratio'"),
        (cell(7, "ratio", "x"), "row 8, column 'ratio'"),
        (cell(70, "ratio", 0.5), "column 'ratio': latency 'light' batch size 1 decreases"),
        (cell(50, "ratio", 1.0001), "row 51, column 'ratio'"),
        (cell(3, "level", 0.035), "rows 1-101, column 'level'"),
        (lambda d: d.drop(columns="level"), "column 'level': missing"),
        (lambda d: d.iloc[:1], "must have the 101 levels"),
    ],
)
def test_a_bad_shape_is_refused_naming_row_and_column(tmp_path, mutate, expected):
    folder = write_bundle(make_bundle(), tmp_path / "b")
    good = shape_rows("latency", "light", 1, shape_ratios(TWO_MODES * np.linspace(1, 1.1, 1000)))
    mutate(good).to_csv(folder / SHAPES_FILE, index=False)
    with pytest.raises(BundleError) as info:
        load_bundle(folder)
    assert f"{SHAPES_FILE}: " in str(info.value) and expected in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "hop, size, expected",
    [("queue", 0, "unknown hop 'queue'"), ("dispatch", 1, "a hop's is 0, got 1")],
)
def test_a_bad_hop_shape_is_refused(hop, size, expected):
    shapes = shape_rows("hop", hop, size, shape_ratios(TWO_MODES))
    with pytest.raises(BundleError, match=expected):
        with_shapes(make_bundle(), shapes)


def test_cli_simulate_draws_a_bundles_shapes_and_refuses_a_bundle_without(tmp_path):
    from hostile import assert_one_line_error, check_run_folder, invoke

    bundle = make_bundle(base_latency_s={"light": 1.0, "heavy": 3.0})
    shapes = shape_rows("latency", "light", 1, shape_ratios(TWO_MODES))
    shaped = write_bundle(with_shapes(bundle, shapes), tmp_path / "shaped")
    plain = write_bundle(bundle, tmp_path / "plain")
    args = ["--policy", "clipper-light", "--trace", "constant:rate=0.2,duration=60"]
    args += ["--workers", "1", "--slo", "1000", "--service-time", "empirical", "--quiet"]
    done = invoke("simulate", "--bundle", shaped, *args, "--out", tmp_path / "run")
    assert done.exit_code == 0, done
    check_run_folder(tmp_path / "run")
    refused = invoke("simulate", "--bundle", plain, *args, "--out", tmp_path / "none")
    assert_one_line_error(refused, "service_time 'empirical'", "shapes.csv")
    assert not (tmp_path / "none").exists()
