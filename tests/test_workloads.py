"""Traces: file formats, generators, spec strings and the artifact's Azure traces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from simulator.azure_shape import AZURE_HOURS, scale_to_qps, synthetic_azure_shape
from simulator.workloads import (
    CSV_HEADER,
    Trace,
    TraceError,
    alternating_pools,
    azure,
    constant,
    parse_trace_spec,
    phases,
    poisson,
    read_azure_shape,
    read_trace,
    validate_prompt_ids,
    write_artifact_trace,
    write_trace_csv,
)

N_PROMPTS = 5000
EASY = np.arange(0, 100)
HARD = np.arange(100, 200)
POOLS = {"easy": EASY, "hard": HARD}
ARTIFACT_PEAKS_QPS = (20, 24, 32, 40, 56, 72)


def _per_second_counts(trace: Trace, n_seconds: int) -> np.ndarray:
    return np.bincount(trace.arrival_s.astype(np.int64), minlength=n_seconds + 1)[:n_seconds]


# ----------------------------------------------------------------------------- Trace


def test_trace_copies_and_freezes_arrays():
    arrival = np.array([0.0, 1.0, 1.0, 2.5])
    trace = Trace(arrival, np.array([3, 1, 4, 1], dtype=np.int32), name="t")
    arrival[0] = 9.0
    assert trace.arrival_s[0] == 0.0
    assert trace.prompt_idx.dtype == np.int64 and len(trace) == 4
    with pytest.raises(ValueError):
        trace.arrival_s[0] = 1.0
    assert trace.content_hash() == Trace([0.0, 1.0, 1.0, 2.5], [3, 1, 4, 1]).content_hash()
    assert trace.content_hash() != Trace([0.0, 1.0, 1.0, 2.5], [3, 1, 4, 2]).content_hash()


@pytest.mark.parametrize(
    ("arrival_s", "prompt_idx", "message"),
    [
        ([], [], "empty trace"),
        ([0.0, 1.0], [1], "same length"),
        ([0.0, -1.0], [1, 2], "arrival_s[1]=-1.0 is not a finite time"),
        ([0.0, float("nan")], [1, 2], "arrival_s[1]=nan"),
        ([2.0, 1.0], [1, 2], "arrival_s[1]=1.0 is before arrival_s[0]=2.0"),
        ([0.0, 1.0], [1.0, 2.0], "prompt_idx must hold integers"),
        ([0.0, 1.0], [1, -2], "prompt_idx[1]=-2 is negative"),
    ],
)
def test_trace_rejects_bad_arrays(arrival_s, prompt_idx, message):
    with pytest.raises(TraceError, match=r"trace 'bad'") as info:
        Trace(np.array(arrival_s), np.array(prompt_idx), name="bad")
    assert message in str(info.value)


def test_validate_prompt_ids_names_source_and_query():
    trace = Trace([0.0, 1.0, 2.0], [0, 4, 5])
    validate_prompt_ids(trace, 6, "src")
    with pytest.raises(
        TraceError, match=r"^src: query 2 \(arrival_s=2.0\): prompt_idx 5 is outside \[0, 5\)$"
    ):
        validate_prompt_ids(trace, 5, "src")
    with pytest.raises(TraceError, match="n_prompts must be >= 1"):
        validate_prompt_ids(trace, 0, "src")


# ----------------------------------------------------------------------------- files


def test_csv_round_trip_is_exact_and_byte_stable(tmp_path):
    trace = poisson(5.0, 60.0, n_prompts=N_PROMPTS, seed=3)
    first = write_trace_csv(trace, tmp_path / "a.csv")
    assert first.read_text().splitlines()[0] == CSV_HEADER
    back = read_trace(first)
    assert np.array_equal(back.arrival_s, trace.arrival_s)
    assert np.array_equal(back.prompt_idx, trace.prompt_idx)
    assert back.content_hash() == trace.content_hash()
    second = write_trace_csv(back, tmp_path / "b.csv")
    assert first.read_bytes() == second.read_bytes()


def test_artifact_round_trip_keeps_microseconds_and_is_byte_stable(tmp_path):
    trace = poisson(5.0, 60.0, n_prompts=N_PROMPTS, seed=4)
    first = write_artifact_trace(trace, tmp_path / "a.txt")
    assert "," in first.read_text().splitlines()[0] and "arrival" not in first.read_text()
    back = read_trace(first)
    assert np.max(np.abs(back.arrival_s - trace.arrival_s)) <= 0.5e-6 + 1e-12
    assert np.array_equal(back.prompt_idx, trace.prompt_idx)
    second = write_artifact_trace(back, tmp_path / "b.txt")
    assert first.read_bytes() == second.read_bytes()


def test_artifact_reader_sorts_stably_by_arrival(tmp_path):
    path = tmp_path / "unsorted.txt"
    path.write_text("5.0,3\n1.0,7\n5.0,1\n0.5,2\n5,9\n")
    trace = read_trace(path)
    assert trace.arrival_s.tolist() == [0.0005, 0.001, 0.005, 0.005, 0.005]
    assert trace.prompt_idx.tolist() == [2, 7, 3, 1, 9]  # ties keep file order
    assert trace.name == "unsorted.txt"


def test_reads_the_real_artifact_trace(hadis_artifact):
    path = hadis_artifact / "traces/maf/multi_dynamic_testbed/trace_1to20qps.txt"
    raw_ms = np.loadtxt(path, delimiter=",")[:, 0]
    assert np.any(np.diff(raw_ms) < 0)  # the file really is unsorted
    trace = read_trace(path, n_prompts=N_PROMPTS)
    assert len(trace) == raw_ms.size == 3931
    assert np.all(np.diff(trace.arrival_s) >= 0)
    assert np.array_equal(np.sort(raw_ms) / 1000.0, trace.arrival_s)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "empty file"),
        ("\n\n", "empty file"),
        (CSV_HEADER + "\n", "empty trace (header only)"),
        (CSV_HEADER + "\n1.0,2\nx,3\n", "line 3: field arrival_s: 'x' is not a finite decimal"),
        (CSV_HEADER + "\n-1.0,2\n", "line 2: field arrival_s: '-1.0' must be finite and >= 0"),
        (CSV_HEADER + "\ninf,2\n", "line 2: field arrival_s: 'inf' is not a finite decimal"),
        (CSV_HEADER + "\n1_0,2\n", "line 2: field arrival_s: '1_0' is not a finite decimal"),
        (CSV_HEADER + "\n1.0,1_0\n", "line 2: field prompt_idx: '1_0' is not an integer"),
        (CSV_HEADER + "\n1.0,2.5\n", "line 2: field prompt_idx: '2.5' is not an integer"),
        (CSV_HEADER + "\n1.0,-4\n", "line 2: field prompt_idx: -4 is outside [0)"),
        (CSV_HEADER + "\n1.0\n", "line 2: expected 2 fields 'arrival_s,prompt_idx', got 1"),
        (CSV_HEADER + "\n1.0,2,3\n", "line 2: expected 2 fields"),
        (
            CSV_HEADER + "\n1.0,2\n0.5,3\n",
            "line 3: arrival_s=0.5 is before the previous line's 1.0",
        ),
        ("10.0,1\nnan,2\n", "line 2: field arrival_ms: 'nan' is not a finite decimal"),
        ("10.0,1\n\n20.0,2\n", "line 2: expected 2 fields 'arrival_ms,prompt_idx', got 1"),
        ("10.0,1\n20.0,x\n", "line 2: field prompt_idx: 'x' is not an integer"),
        ("time,prompt\n1,2\n", "line 1: unrecognised header 'time,prompt'"),
    ],
)
def test_read_trace_errors_name_file_line_and_field(tmp_path, content, message):
    path = tmp_path / "bad_trace.txt"
    path.write_text(content)
    with pytest.raises(TraceError) as info:
        read_trace(path)
    assert str(info.value).startswith(str(path))
    assert message in str(info.value)


def test_read_trace_checks_prompt_range_per_line(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("10.0,1\n20.0,5\n")
    assert len(read_trace(path, n_prompts=6)) == 2
    with pytest.raises(TraceError, match=r"t.txt: line 2: field prompt_idx: 5 is outside \[0, 5\)"):
        read_trace(path, n_prompts=5)


def test_read_trace_missing_and_binary_files(tmp_path):
    with pytest.raises(TraceError, match="nope.csv: cannot read"):
        read_trace(tmp_path / "nope.csv")
    binary = tmp_path / "bin.csv"
    binary.write_bytes(b"\xff\xfe\x00\x01")
    with pytest.raises(TraceError, match="bin.csv: not a UTF-8 text file"):
        read_trace(binary)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("hour,invocations\n0,1\n1,2\n", "line 1: expected header ',hour,invocations'"),
        (",hour,invocations\n0,0,5.0\n", "needs at least 2 hours"),
        (",hour,invocations\n0,0,5.0\n1,2,6.0\n", "line 3: field hour: expected 1"),
        (",hour,invocations\n0,0,5.0\n1,1,-6.0\n", "line 3: field invocations"),
        (",hour,invocations\n0,0,5.0\n1,1\n", "line 3: expected 3 fields"),
    ],
)
def test_read_azure_shape_errors(tmp_path, content, message):
    path = tmp_path / "shape.csv"
    path.write_text(content)
    with pytest.raises(TraceError) as info:
        read_azure_shape(path)
    assert message in str(info.value) and "shape.csv" in str(info.value)


# ----------------------------------------------------------------------------- generators

GENERATORS = {
    "poisson": lambda seed: poisson(8.0, 100.0, n_prompts=N_PROMPTS, seed=seed),
    "constant": lambda seed: constant(8.0, 100.0, n_prompts=N_PROMPTS, seed=seed),
    "azure": lambda seed: azure(24.0, 1.0, n_prompts=N_PROMPTS, seed=seed),
    "azure_artifact": lambda seed: azure(
        24.0, 1.0, n_prompts=N_PROMPTS, seed=seed, arrivals="artifact"
    ),
    "phases": lambda seed: phases([2, 6, 10, 6], 30.0, n_prompts=N_PROMPTS, seed=seed),
    "alternating": lambda seed: alternating_pools(
        8.0, 30.0, [EASY, HARD], n_prompts=N_PROMPTS, seed=seed
    ),
}


@pytest.mark.parametrize("kind", sorted(GENERATORS))
def test_generators_are_deterministic_per_seed(kind):
    a, b, c = GENERATORS[kind](11), GENERATORS[kind](11), GENERATORS[kind](12)
    assert np.array_equal(a.arrival_s, b.arrival_s) and np.array_equal(a.prompt_idx, b.prompt_idx)
    assert a.content_hash() == b.content_hash()
    assert a.content_hash() != c.content_hash()
    assert np.all(np.diff(a.arrival_s) >= 0) and a.arrival_s[0] >= 0
    validate_prompt_ids(a, N_PROMPTS, kind)


def test_poisson_rate_and_interarrivals():
    rate_qps, duration_s = 8.0, 10_000.0
    trace = poisson(rate_qps, duration_s, n_prompts=N_PROMPTS, seed=1)
    # sigma = sqrt(80000) ~ 283: 3% is 8.5 sigma, a factor-2 bug is 280 sigma away
    expected = rate_qps * duration_s
    assert abs(len(trace) - expected) < 0.03 * expected
    assert trace.arrival_s[-1] < duration_s
    gaps = np.diff(trace.arrival_s)
    assert abs(gaps.std() / gaps.mean() - 1.0) < 0.05  # exponential gaps: CV 1
    counts = np.bincount(trace.prompt_idx, minlength=N_PROMPTS)
    assert counts.size == N_PROMPTS and counts.min() > 0  # ~16 per prompt: every prompt drawn


def test_prompt_pool_restricts_prompts_without_moving_arrivals():
    plain = poisson(8.0, 100.0, n_prompts=N_PROMPTS, seed=5)
    pooled = poisson(8.0, 100.0, n_prompts=N_PROMPTS, seed=5, prompt_pool=HARD)
    assert np.array_equal(plain.arrival_s, pooled.arrival_s)
    assert set(pooled.prompt_idx.tolist()) <= set(HARD.tolist())
    with pytest.raises(TraceError, match=r"prompt_pool: prompt id 100 is outside \[0, 100\)"):
        poisson(8.0, 100.0, n_prompts=100, seed=5, prompt_pool=HARD)


def test_constant_is_evenly_spaced():
    trace = constant(8.0, 200.0, n_prompts=N_PROMPTS, seed=0)
    assert len(trace) == 1600
    assert np.allclose(np.diff(trace.arrival_s), 0.125) and trace.arrival_s[0] == 0.0
    assert len(constant(3.0, 1.0, n_prompts=5, seed=0)) == 3


def test_phases_hold_each_rate():
    rates_qps, phase_s = [2.0, 6.0, 10.0, 6.0], 2000.0
    trace = phases(rates_qps, phase_s, n_prompts=N_PROMPTS, seed=2)
    per_phase = np.bincount((trace.arrival_s // phase_s).astype(np.int64), minlength=4)
    assert per_phase.size == 4
    for count, rate in zip(per_phase, rates_qps):
        mean = rate * phase_s
        assert abs(count - mean) < 6 * np.sqrt(mean)  # <= 9.5% of the mean, far from a 2x bug


def test_alternating_pools_draw_only_from_their_phase_pool():
    phase_s = 50.0
    trace = alternating_pools(8.0, phase_s, [EASY, HARD], n_prompts=N_PROMPTS, seed=3)
    phase = (trace.arrival_s // phase_s).astype(np.int64)
    assert set(phase.tolist()) == {0, 1, 2, 3}  # HADIS Fig. 12: four phases by default
    assert np.all(np.isin(trace.prompt_idx[phase % 2 == 0], EASY))
    assert np.all(np.isin(trace.prompt_idx[phase % 2 == 1], HARD))
    assert abs(len(trace) - 8.0 * 4 * phase_s) < 6 * np.sqrt(8.0 * 4 * phase_s)
    three = alternating_pools(8.0, phase_s, [EASY, HARD], n_prompts=N_PROMPTS, seed=3, n_phases=3)
    assert three.arrival_s[-1] < 3 * phase_s


def test_azure_scales_the_shape_to_min_and_peak():
    shape = np.array([5.0, 10.0, 7.5, 5.0])
    assert scale_to_qps(shape, 1.0, 21.0).tolist() == [1.0, 21.0, 11.0, 1.0]
    trace = azure(400.0, 100.0, 10.0, n_prompts=N_PROMPTS, seed=0, shape=shape)
    per_hour = np.bincount((trace.arrival_s // 10.0).astype(np.int64), minlength=4)
    expected = np.array([100.0, 400.0, 250.0, 100.0]) * 10.0
    assert np.all(np.abs(per_hour - expected) < 6 * np.sqrt(expected))
    artifact_mode = azure(
        400.0, 100.0, 10.0, n_prompts=N_PROMPTS, seed=0, shape=shape, arrivals="artifact"
    )
    assert abs(len(artifact_mode) - expected.sum()) < 0.01 * expected.sum()


def test_artifact_mode_drops_arrivals_whose_gap_exceeds_the_window():
    # every hour rounds to 1 arrival; its single exponential gap (mean 1 s) is >= 1 s w.p. 1/e
    shape = np.r_[np.zeros(2000), 1.0]
    trace = azure(1.4, 1.0, n_prompts=5, seed=0, shape=shape, arrivals="artifact")
    assert abs(len(trace) / shape.size - (1 - np.exp(-1))) < 0.05  # sd ~0.011
    poisson_mode = azure(1.4, 1.0, n_prompts=5, seed=0, shape=shape)
    assert abs(len(poisson_mode) / shape.size - 1.0) < 0.1


def test_synthetic_shape_is_deterministic_and_azure_like():
    shape = synthetic_azure_shape()
    assert shape.shape == (AZURE_HOURS,)
    assert np.array_equal(shape, synthetic_azure_shape())
    assert not np.array_equal(shape, synthetic_azure_shape(seed=1))
    assert abs(int(np.argmax(shape)) - 202) < 30  # peak about 58% through, like the real trace
    rates = scale_to_qps(shape, 1.0, 24.0)
    assert rates.min() == pytest.approx(1.0) and rates.max() == pytest.approx(24.0)
    trace = azure(24.0, 1.0, n_prompts=N_PROMPTS, seed=0)
    assert abs(len(trace) - rates.sum()) < 6 * np.sqrt(rates.sum())
    assert trace.arrival_s[-1] < AZURE_HOURS


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: poisson(-1, 10, n_prompts=5, seed=0),
            "poisson: rate_qps: -1 is not a finite number >= 0",
        ),
        (
            lambda: poisson(1, 0, n_prompts=5, seed=0),
            "poisson: duration_s: 0 is not a finite number > 0",
        ),
        (lambda: poisson(0, 10, n_prompts=5, seed=0), "empty trace"),
        (lambda: poisson(1, 10, n_prompts=0, seed=0), "n_prompts: must be an integer >= 1"),
        (lambda: poisson(1, 10, n_prompts=5, seed=-1), "seed: must be an integer >= 0"),
        (lambda: poisson(1, 10, n_prompts=5, seed=1.5), "seed: must be an integer >= 0"),
        (lambda: constant(float("inf"), 10, n_prompts=5, seed=0), "constant: rate_qps"),
        (lambda: azure(1, 2, n_prompts=5, seed=0), "azure: min_qps=2 exceeds peak_qps=1"),
        (lambda: azure(2, 1, 0, n_prompts=5, seed=0), "azure: seconds_per_hour"),
        (lambda: azure(2, 1, n_prompts=5, seed=0, arrivals="x"), "azure: arrivals 'x'"),
        (lambda: azure(2, 1, n_prompts=5, seed=0, shape=np.ones(4)), "azure: shape must be"),
        (lambda: phases([], 10, n_prompts=5, seed=0), "phases: rates_qps is empty"),
        (lambda: phases([1, -1], 10, n_prompts=5, seed=0), "phases: rates_qps[1]"),
        (lambda: alternating_pools(1, 10, [], n_prompts=5, seed=0), "no prompt pools"),
        (lambda: alternating_pools(1, 10, [EASY], n_prompts=50, seed=0), "pools[0]: prompt id 50"),
        (
            lambda: alternating_pools(1, 10, [np.array([])], n_prompts=5, seed=0),
            "pools[0]: must be",
        ),
        (lambda: alternating_pools(1, 10, [EASY], n_prompts=500, seed=0, n_phases=0), "n_phases"),
    ],
)
def test_generator_errors(call, message):
    with pytest.raises(TraceError) as info:
        call()
    assert message in str(info.value)


def test_one_hour_at_24_qps_is_vectorised():
    trace = poisson(24.0, 3600.0, n_prompts=N_PROMPTS, seed=0)
    assert abs(len(trace) - 86_400) < 6 * np.sqrt(86_400)


# ----------------------------------------------------------------------------- spec strings


@pytest.mark.parametrize(
    ("spec", "direct"),
    [
        ("poisson:rate=8,duration=600", lambda: poisson(8, 600, n_prompts=N_PROMPTS, seed=7)),
        ("constant:rate=8,duration=200", lambda: constant(8, 200, n_prompts=N_PROMPTS, seed=7)),
        ("azure:peak=24,min=1", lambda: azure(24, 1, n_prompts=N_PROMPTS, seed=7)),
        (
            "azure: peak=24, min=1, seconds_per_hour=2, arrivals=artifact",
            lambda: azure(24, 1, 2, n_prompts=N_PROMPTS, seed=7, arrivals="artifact"),
        ),
        (
            "phases:rates=2/6/10/6,phase_s=600",
            lambda: phases([2, 6, 10, 6], 600, n_prompts=N_PROMPTS, seed=7),
        ),
        (
            "alternating:rate=8,phase_s=300,pools=easy/hard",
            lambda: alternating_pools(8, 300, [EASY, HARD], n_prompts=N_PROMPTS, seed=7),
        ),
        (
            "alternating:rate=8,phase_s=300,pools=hard/easy/hard,n_phases=6",
            lambda: alternating_pools(
                8, 300, [HARD, EASY, HARD], n_prompts=N_PROMPTS, seed=7, n_phases=6
            ),
        ),
    ],
)
def test_spec_matches_direct_call(spec, direct):
    trace = parse_trace_spec(spec, N_PROMPTS, seed=7, pools=POOLS)
    assert trace.content_hash() == direct().content_hash()


def test_spec_reads_files(tmp_path):
    trace = poisson(3.0, 20.0, n_prompts=10, seed=0)
    path = write_trace_csv(trace, tmp_path / "t.csv")
    assert parse_trace_spec(str(path), 10, seed=0).content_hash() == trace.content_hash()
    with pytest.raises(
        TraceError, match=r"t.csv: line \d+: field prompt_idx: \d is outside \[0, 5\)"
    ):
        parse_trace_spec(str(path), 5, seed=0)


def test_spec_azure_reads_a_shape_file(tmp_path):
    path = tmp_path / "shape.csv"
    path.write_text(",hour,invocations\n0,0,5.0\n1,1,10.0\n2,2,7.5\n")
    trace = parse_trace_spec(f"azure:peak=21,min=1,seconds_per_hour=100,shape={path}", 50, seed=1)
    direct = azure(21, 1, 100, n_prompts=50, seed=1, shape=np.array([5.0, 10.0, 7.5]))
    assert trace.content_hash() == direct.content_hash()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("bursty:rate=8", "unknown kind 'bursty'; known: poisson, constant"),
        ("no/such/file.csv", "not a known kind and no such trace file"),
        ("poisson:rate=8", "missing key 'duration'"),
        ("poisson:", "missing key 'rate'"),
        ("poisson:rate=8,duration=60,burst=2", "unknown key 'burst' for poisson"),
        ("poisson:rate=8,rate=9,duration=60", "key 'rate' given twice"),
        ("poisson:rate8,duration=60", "item 'rate8' is not key=value"),
        ("poisson:rate=fast,duration=60", "key 'rate': 'fast' is not a finite number >= 0"),
        ("poisson:rate=-2,duration=60", "key 'rate': '-2' is not a finite number >= 0"),
        ("poisson:rate=nan,duration=60", "key 'rate': 'nan' is not a finite number >= 0"),
        ("poisson:rate=1_0,duration=60", "key 'rate': '1_0' is not a finite number >= 0"),
        ("poisson:rate=inf,duration=60", "key 'rate': 'inf' is not a finite number >= 0"),
        (
            "constant:rate=1e12,duration=30",
            "constant: 3e+13 queries in a trace exceeds the bound of 2000000 "
            "(set T2ISIM_MAX_QUERIES to raise it)",
        ),
        (
            "poisson:rate=8,duration=1e12",
            "poisson: 1e+12 simulated seconds exceeds the bound of 172800 "
            "(set T2ISIM_MAX_SIM_S to raise it)",
        ),
        ("phases:rates=1e300/1,phase_s=1", "phases: 1e+300 queries in a trace exceeds"),
        ("azure:peak=24,min=1,seconds_per_hour=1e9", "azure: 3.47e+11 simulated seconds exceeds"),
        ("alternating:rate=1,phase_s=1,pools=easy,n_phases=1e12", "key 'n_phases': '1e12' is not"),
        ("constant:rate=8,duration=0", "key 'duration': '0' is not a finite number > 0"),
        ("poisson:rate=0,duration=60", "empty trace"),
        ("azure:peak=1,min=5", "min_qps=5 exceeds peak_qps=1"),
        ("azure:peak=24,min=1,seconds_per_hour=-1", "key 'seconds_per_hour'"),
        ("azure:peak=24,min=1,arrivals=bursty", "arrivals 'bursty'"),
        ("azure:peak=24,min=1,shape=/no/such/shape.csv", "shape.csv: cannot read"),
        ("phases:rates=2/x/6,phase_s=60", "key 'rates': 'x' is not a finite number"),
        ("phases:rates=2/6,phase_s=0", "key 'phase_s'"),
        ("alternating:rate=8,phase_s=300,pools=easy/medium", "key 'pools': unknown pool 'medium'"),
        ("alternating:rate=8,phase_s=300,pools=easy,n_phases=2.5", "key 'n_phases'"),
    ],
)
def test_spec_errors_name_spec_and_key(spec, message):
    with pytest.raises(TraceError) as info:
        parse_trace_spec(spec, N_PROMPTS, seed=0, pools=POOLS)
    assert f"trace spec {spec!r}" in str(info.value) or "shape.csv" in str(info.value)
    assert message in str(info.value)


def test_spec_without_pools_dict():
    with pytest.raises(TraceError, match=r"unknown pool 'easy' \(given: none\)"):
        parse_trace_spec("alternating:rate=8,phase_s=300,pools=easy", N_PROMPTS, seed=0)


def test_spec_checks_prompt_ids_against_n_prompts():
    # the pools hold ids up to 199: a 150-prompt bundle cannot serve them
    with pytest.raises(TraceError, match=r"pools\[0\]: prompt id 150 is outside \[0, 150\)"):
        parse_trace_spec("alternating:rate=8,phase_s=30,pools=hard", 150, seed=0, pools=POOLS)


# ----------------------------------------------------------------------------- real Azure shape


@pytest.fixture(scope="module")
def azure_shape(hadis_artifact) -> np.ndarray:
    return read_azure_shape(hadis_artifact / "traces/maf/shape/original_invocations.csv")


def _artifact_trace(hadis_artifact: Path, peak_qps: int) -> Trace:
    path = hadis_artifact / f"traces/maf/multi_dynamic_testbed/trace_1to{peak_qps}qps.txt"
    return read_trace(path, n_prompts=N_PROMPTS)


def _dispersion(counts: np.ndarray, rates_qps: np.ndarray) -> float:
    """Variance of per-second counts around the rate, over the mean (1 for a Poisson count)."""
    return float(((counts - rates_qps) ** 2).sum() / rates_qps.sum())


def test_real_shape_reads_347_hours(azure_shape):
    assert azure_shape.shape == (AZURE_HOURS,)
    assert int(np.argmax(azure_shape)) == 202


@pytest.mark.parametrize("peak_qps", ARTIFACT_PEAKS_QPS)
def test_azure_rates_match_the_artifact_traces(hadis_artifact, azure_shape, peak_qps):
    artifact = _artifact_trace(hadis_artifact, peak_qps)
    counts = _per_second_counts(artifact, AZURE_HOURS)
    rates_qps = scale_to_qps(azure_shape, 1.0, float(peak_qps))
    # the artifact scaled the same shape to [1, peak]: its per-second counts follow our rates
    assert np.corrcoef(rates_qps, counts)[0, 1] > 0.9
    # ... with a fixed count round(rate) per second: total within 0.5% of sum(round(rate))
    assert abs(len(artifact) / np.rint(rates_qps).sum() - 1.0) < 0.005
    for arrivals, total_tolerance in (("poisson", 0.05), ("artifact", 0.01)):
        ours = azure(
            peak_qps, 1.0, n_prompts=N_PROMPTS, seed=peak_qps, shape=azure_shape, arrivals=arrivals
        )
        assert abs(len(ours) / len(artifact) - 1.0) < total_tolerance
        ours_counts = _per_second_counts(ours, AZURE_HOURS)
        window_10s = np.corrcoef(
            ours_counts[:340].reshape(-1, 10).sum(1), counts[:340].reshape(-1, 10).sum(1)
        )[0, 1]
        assert window_10s > 0.95


def test_artifact_mode_reproduces_the_artifact_underdispersion(hadis_artifact, azure_shape):
    rates_qps = scale_to_qps(azure_shape, 1.0, 20.0)
    artifact = _per_second_counts(_artifact_trace(hadis_artifact, 20), AZURE_HOURS)
    assert _dispersion(artifact, rates_qps) < 0.8
    dispersion = {
        arrivals: _dispersion(
            _per_second_counts(
                azure(20, 1, n_prompts=N_PROMPTS, seed=0, shape=azure_shape, arrivals=arrivals),
                AZURE_HOURS,
            ),
            rates_qps,
        )
        for arrivals in ("poisson", "artifact")
    }
    assert dispersion["artifact"] < 0.8
    assert 0.75 < dispersion["poisson"] < 1.35
