"""The bundle contract: validation names file/row/column, latency lookup, round trips."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from bundle_factory import make_bundle

from simulator.bundle import BundleError, load_bundle, write_bundle
from simulator.cascade import hybrid_assignment, quality_threshold, router_threshold


@pytest.fixture()
def folder(tmp_path):
    return write_bundle(make_bundle(batch_sizes=(1, 2, 4, 8)), tmp_path / "b")


def corrupt(folder, file, mutate):
    path = folder / file
    df = pd.read_csv(path, keep_default_na=file != "prompts.csv")
    mutate(df)
    df.to_csv(path, index=False)


@pytest.mark.parametrize(
    "file, mutate, expected",
    [
        (
            "models.csv",
            lambda d: d.__delitem__("fid_alone"),
            "models.csv: column fid_alone: missing required column",
        ),
        (
            "models.csv",
            lambda d: d.__setitem__("steps", [4, -1]),
            "models.csv: row 2: column steps",
        ),
        (
            "latency.csv",
            lambda d: d.__setitem__("latency_p50_s", ["x", *d.latency_p50_s[1:]]),
            "latency.csv: row 1: column latency_p50_s: value 'x' is not a finite number",
        ),
        (
            "latency.csv",
            lambda d: d.loc.__setitem__((0, "model"), "ghost"),
            "latency.csv: row 1: column model: unknown model 'ghost'",
        ),
        (
            "latency.csv",
            lambda d: d.loc.__setitem__((0, "latency_p95_s"), 0.1),
            "latency.csv: row 1: column latency_p95_s: p95 is below p50",
        ),
        (
            "prompts.csv",
            lambda d: d.loc.__setitem__((3, "prompt_id"), 7),
            "prompts.csv: row 4: column prompt_id: expected 3",
        ),
        (
            "prompts.csv",
            lambda d: d.loc.__setitem__((5, "num_objects"), -2),
            "prompts.csv: row 6: column num_objects",
        ),
        (
            "scores.csv",
            lambda d: d.loc.__setitem__((9, "disc_score"), 1.5),
            "scores.csv: row 10: column disc_score",
        ),
        (
            "scores.csv",
            lambda d: d.__setitem__("prompt_id", d.prompt_id.where(d.index != 4, 0)),
            "scores.csv: row 5: column model: duplicate (prompt_id, model)",
        ),
        (
            "cascades.csv",
            lambda d: d.loc.__setitem__((2, "router_ratio"), 1.2),
            "cascades.csv: row 3: column router_ratio",
        ),
        (
            "cascades.csv",
            lambda d: d.loc.__setitem__((0, "heavy"), "light"),
            "cascades.csv: row 1: column heavy: heavy model equals light model",
        ),
    ],
)
def test_validation_names_file_row_and_column(folder, file, mutate, expected):
    corrupt(folder, file, mutate)
    with pytest.raises(BundleError) as info:
        load_bundle(folder)
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


def timed_after_idle(d, gap_s=0.5):
    """latency.csv with every row timed after `gap_s` idle, 1.2 times slower."""
    d["idle_gap_s"] = gap_s
    d["latency_idle_p50_s"] = d["latency_p50_s"] * 1.2


def _idle_then(row: int, column: str, value: float):
    def mutate(d):
        timed_after_idle(d)
        d.loc[row, column] = value

    return mutate


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (
            lambda d: (timed_after_idle(d), d.__delitem__("idle_gap_s")),
            "latency.csv: column idle_gap_s: missing (it comes with latency_idle_p50_s)",
        ),
        (
            _idle_then(1, "latency_idle_p50_s", float("nan")),
            "latency.csv: row 2: column latency_idle_p50_s: value nan is not a finite number > 0",
        ),
        (
            _idle_then(0, "idle_gap_s", 0.0),
            "latency.csv: row 1: column latency_idle_p50_s: value 4.8 is not empty (idle_gap_s "
            "is 0)",
        ),
        (_idle_then(0, "idle_gap_s", -1.0), "latency.csv: row 1: column idle_gap_s: value"),
        (
            _idle_then(1, "idle_gap_s", 0.7),
            "latency.csv: column idle_gap_s: model 'heavy' has several gaps",
        ),
        (
            _idle_then(1, "latency_idle_p50_s", 0.5),  # below row 1 (heavy, 1): 4.8
            "latency.csv: row 2: column latency_idle_p50_s: latency of heavy after idle "
            "decreases with batch size (not monotone)",
        ),
    ],
)
def test_latency_after_idle_is_validated(folder, mutate, expected):
    corrupt(folder, "latency.csv", mutate)
    with pytest.raises(BundleError) as info:
        load_bundle(folder)
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_latency_after_idle_per_model_round_trips(folder):
    def light_only(d):
        timed_after_idle(d, 0.25)
        heavy = d["model"] == "heavy"
        d.loc[heavy, "idle_gap_s"] = 0.0
        d.loc[heavy, "latency_idle_p50_s"] = float("nan")

    corrupt(folder, "latency.csv", light_only)
    bundle = load_bundle(folder)
    assert bundle.has_idle_latency and bundle.idle_gap_s == (0.25, 0.0)
    np.testing.assert_allclose(
        bundle.idle_latency_table_s[0, 1:], 1.2 * bundle.latency_table_s[0, 1:]
    )
    assert np.isnan(bundle.idle_latency_table_s[1]).all()
    again = load_bundle(write_bundle(bundle, folder.parent / "again"))
    assert again.content_hash() == bundle.content_hash()
    assert not make_bundle().has_idle_latency


def test_non_monotone_latency_is_rejected(folder):
    def slower_small_batch(d):
        d.loc[(d.model == "light") & (d.batch_size == 4), ["latency_p50_s", "latency_p95_s"]] = 0.2

    corrupt(folder, "latency.csv", slower_small_batch)
    with pytest.raises(BundleError, match="decreases with batch size"):
        load_bundle(folder)


def test_bad_meta_and_missing_files(folder):
    (folder / "bundle.json").write_text(json.dumps({"schema_version": 99}))
    with pytest.raises(BundleError, match="schema_version: expected 1"):
        load_bundle(folder)
    (folder / "bundle.json").write_text("{not json")
    with pytest.raises(BundleError, match="invalid JSON"):
        load_bundle(folder)
    with pytest.raises(BundleError, match="no such directory"):
        load_bundle(folder / "nope")


def test_latency_interpolates_inside_and_refuses_outside():
    bundle = make_bundle(base_latency_s={"light": 1.0, "heavy": 4.0}, batch_sizes=(1, 2, 4, 8))
    # profiled: b=4 -> 3.6, b=8 -> 7.2 (0.9 * b * base); b=6 interpolates linearly
    assert bundle.batch_latency_s("light", 6) == pytest.approx(5.4)
    sizes = range(1, 9)
    values = [bundle.batch_latency_s("light", b) for b in sizes]
    assert values == sorted(values)
    with pytest.raises(BundleError, match="outside its profiled range 1..8"):
        bundle.batch_latency_s("light", 16)
    with pytest.raises(BundleError, match="unknown model 'ghost'"):
        bundle.batch_latency_s("ghost", 1)


def test_round_trip_is_lossless_and_byte_stable(tmp_path):
    bundle = make_bundle()
    first = write_bundle(bundle, tmp_path / "a")
    loaded = load_bundle(first)
    second = write_bundle(loaded, tmp_path / "b")
    for file in sorted(p.name for p in first.iterdir()):
        assert (first / file).read_bytes() == (second / file).read_bytes(), file
    assert loaded.content_hash() == load_bundle(second).content_hash()
    np.testing.assert_allclose(loaded.disc_score, bundle.disc_score, rtol=1e-9)


def test_quantile_rules_edges():
    scores = np.arange(10, dtype=float)
    assert router_threshold(scores, 0.0) == np.inf
    assert router_threshold(scores, 1.0) == 0.0
    assert quality_threshold(scores, 1.0) == np.inf
    bypassed, escalated = hybrid_assignment(scores, scores[::-1].copy(), 0.3, 0.5)
    assert bypassed.sum() == 3  # the top 30% by hardness
    # light score = 9 - hardness: the c=0.5 quantile of light scores is 4.5; of the 7 not
    # bypassed (hardness 0..6, light 9..3) those with light < 4.5 are hardness 5 and 6
    assert np.flatnonzero(escalated).tolist() == [5, 6]
    none_b, none_e = hybrid_assignment(scores, scores, 0.0, 0.0)
    assert not none_b.any() and not none_e.any()
    all_b, _ = hybrid_assignment(scores, scores, 1.0, 0.0)
    assert all_b.all()


def test_batches_below_the_smallest_profiled_size_run_padded():
    bundle = make_bundle(base_latency_s={"light": 1.0, "heavy": 4.0}, batch_sizes=(4, 8))
    assert bundle.batch_latency_s("light", 1) == bundle.batch_latency_s("light", 4)
    with pytest.raises(BundleError, match="outside its profiled range 4..8"):
        bundle.batch_latency_s("light", 9)


def _p05_then(row: int, value):
    def mutate(d):
        d["latency_p05_s"] = (d["latency_p50_s"] * 0.5).astype(object)
        d.loc[row, "latency_p05_s"] = value

    return mutate


@pytest.mark.parametrize(
    "value, shown",
    [(5.0, "5.0"), (0.0, "0.0"), (-1.0, "-1.0"), (float("inf"), "inf"), ("fast", "'fast'")],
)
def test_a_p05_above_the_p50_or_not_a_positive_number_is_refused(folder, value, shown):
    corrupt(folder, "latency.csv", _p05_then(0, value))  # row 1: heavy, batch 1, p50 4.0
    with pytest.raises(BundleError) as info:
        load_bundle(folder)
    expected = (
        f"latency.csv: row 1: column latency_p05_s: value {shown} is not empty or a finite "
        "number in (0, latency_p50_s]"
    )
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_a_p05_may_be_empty_per_row_and_round_trips(folder):
    corrupt(folder, "latency.csv", _p05_then(1, float("nan")))
    bundle = load_bundle(folder)
    table = bundle.latency_p05_table_s
    m = bundle.model_names.index("heavy")
    known = ~np.isnan(table[m])
    assert known.sum() >= 1 and np.isnan(table[m]).any()
    np.testing.assert_allclose(table[m][known], 0.5 * bundle.latency_table_s[m][known])
    again = load_bundle(write_bundle(bundle, folder.parent / "again"))
    assert again.content_hash() == bundle.content_hash()
    np.testing.assert_array_equal(again.latency_p05_table_s, table)
