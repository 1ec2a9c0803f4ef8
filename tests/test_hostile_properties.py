"""Property-based hostile input (Hypothesis): generated trace specs and files, CLI numbers,
policy options, bundle corruptions, routers CSVs and sweep specs. Every command must end with
exit 0 and a complete, valid output, or exit 2 and exactly one stderr line and no output —
never a traceback, another exit code or a leftover staging path, and within a time bound.

Size bounds are lowered for this module (T2ISIM_MAX_QUERIES=4000, T2ISIM_MAX_SIM_S=3000) so
that every accepted input also runs fast; the bounds themselves are what keeps them fast."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from bundle_factory import make_bundle
from hostile import (
    assert_complete_or_error,
    assert_one_line_error,
    check_run_folder,
    invoke,
    strict_json,
)
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from routers.data import RouterDataError, load_wide_csv
from simulator.bundle import write_bundle
from simulator.workloads import read_trace

BOUNDS = {"T2ISIM_MAX_QUERIES": "4000", "T2ISIM_MAX_SIM_S": "3000"}
TINY_TRACE = "constant:rate=1,duration=4"


def examples(n: int) -> settings:
    """`n` examples; no too-slow health check (each example runs a whole command)."""
    return settings(max_examples=n, suppress_health_check=[HealthCheck.too_slow])

HOSTILE_TEXT = [
    "inf", "-inf", "nan", "NaN", "Infinity", "1_0", "0x10", "1e400", "-1e400", "-0", "", " ",
    "1e-300", "1e308", "abc", "[1,2]", "{}", "true", "null", "１", "1e", ".", "-", "+5", "2.",
]


def number_texts() -> st.SearchStrategy[str]:
    """Texts a hostile user types where a number is expected (and some good numbers)."""
    return st.one_of(
        st.sampled_from(HOSTILE_TEXT),
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
        st.floats(min_value=0, max_value=50).map(lambda v: f"{v:.3g}"),
        st.integers(-(10**20), 10**20).map(str),
        st.integers(0, 40).map(str),
        st.text(alphabet="0123456789.eE+-_xinfa", max_size=8),
    )


@pytest.fixture(scope="module", autouse=True)
def small_bounds():
    saved = {key: os.environ.get(key) for key in BOUNDS}
    os.environ.update(BOUNDS)
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory):
    return write_bundle(make_bundle(n_prompts=60), tmp_path_factory.mktemp("bundle") / "b")


def fresh_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="hostile-"))


# ----------------------------------------------------------------------------- traces

SPEC_KEYS = {
    "poisson": ("rate", "duration"),
    "constant": ("rate", "duration"),
    "azure": ("peak", "min", "seconds_per_hour", "arrivals"),
    "phases": ("rates", "phase_s"),
    "alternating": ("rate", "phase_s", "pools", "n_phases"),
}


@st.composite
def well_formed_specs(draw) -> str:
    """Specs a careful user writes (some still above the size bounds)."""
    rate = draw(st.floats(0, 60))
    seconds = draw(st.floats(0.5, 400))
    return draw(st.sampled_from([
        f"poisson:rate={rate:g},duration={seconds:g}",
        f"constant:rate={rate:g},duration={seconds:g}",
        f"azure:peak={rate:g},min=0,seconds_per_hour={seconds / 24:g}",
        f"phases:rates={rate:g}/1/{rate / 2:g},phase_s={seconds / 3:g}",
        f"alternating:rate={rate:g},phase_s={seconds / 4:g},pools=easy/hard",
    ]))


@st.composite
def hostile_specs(draw) -> str:
    kind = draw(st.sampled_from([*SPEC_KEYS, "zigzag"]))
    keys = SPEC_KEYS.get(kind, ("rate",))
    chosen = draw(st.lists(st.sampled_from([*keys, "burst"]), min_size=0, max_size=5))
    items = []
    for key in chosen:
        if key == "rates":
            value = "/".join(draw(st.lists(number_texts(), min_size=0, max_size=4)))
        elif key == "pools":
            value = draw(st.sampled_from(["easy", "hard", "easy/hard", "medium", ""]))
        elif key == "arrivals":
            value = draw(st.sampled_from(["poisson", "artifact", "x"]))
        else:
            value = draw(number_texts())
        items.append(f"{key}={value}" if draw(st.booleans()) or not items else f"{key}{value}")
    return f"{kind}:" + ",".join(items)


def check_trace_file(path: Path) -> None:
    trace = read_trace(path)
    assert 0 < len(trace) <= int(BOUNDS["T2ISIM_MAX_QUERIES"])
    assert float(trace.arrival_s[-1]) <= float(BOUNDS["T2ISIM_MAX_SIM_S"])


@examples(100)
@given(spec=st.one_of(well_formed_specs(), hostile_specs()), seed=st.integers(0, 3))
def test_trace_specs(bundle_dir, spec, seed):
    folder = fresh_dir()
    try:
        out = folder / "trace.csv"
        outcome = invoke("trace", spec, "--bundle", bundle_dir, "--seed", seed, "--out", out)
        assert_complete_or_error(outcome, out, check_trace_file)
        event(f"exit {outcome.exit_code}")
        if outcome.exit_code == 0:
            shown = re.match(r"(\d+) queries", outcome.stdout)
            assert shown and int(shown[1]) == len(read_trace(out))
    finally:
        shutil.rmtree(folder)


def _time_order(row: tuple[str, str]) -> tuple[int, float]:
    try:
        return 0, float(row[0])
    except ValueError:
        return 1, 0.0


@st.composite
def trace_files(draw) -> str:
    header = draw(st.sampled_from(
        ["arrival_s,prompt_idx\n"] * 3 + ["", "time,prompt\n", "\ufeff"]
    ))
    good_row = st.tuples(st.floats(0, 500).map(repr), st.integers(0, 59).map(str))
    bad_row = st.tuples(number_texts(), st.one_of(st.integers(-2, 70).map(str), number_texts()))
    rows = draw(st.lists(st.one_of(*[good_row] * 8, bad_row), max_size=8))
    if draw(st.integers(0, 3)):  # sorted, as a real file would be
        rows = sorted(rows, key=_time_order)
    body = "".join(f"{t},{p}\n" for t, p in rows)
    return header + body + draw(st.sampled_from(["", "", "", "\n", "1,2,3\n", ",\n"]))


@examples(60)
@given(text=trace_files())
def test_trace_files(bundle_dir, text):
    folder = fresh_dir()
    try:
        source = folder / "in.csv"
        source.write_text(text, encoding="utf-8")
        out = folder / "out.csv"
        outcome = invoke("trace", source, "--bundle", bundle_dir, "--out", out)
        assert_complete_or_error(outcome, out, check_trace_file)
        event(f"exit {outcome.exit_code}")
    finally:
        shutil.rmtree(folder)


# ----------------------------------------------------------------------------- simulate

SIM_FLAGS = (
    "--workers", "--slo", "--time-scale", "--max-wait", "--load-s", "--plan-interval",
    "--router-cost", "--disc-cost", "--drop-factor", "--plan-delay", "--seed",
)


@examples(50)
@given(flags=st.dictionaries(st.sampled_from(SIM_FLAGS), number_texts(), min_size=1, max_size=3))
def test_simulate_numbers(bundle_dir, flags):
    folder = fresh_dir()
    try:
        out = folder / "run"
        args = [a for flag, value in flags.items() for a in (f"{flag}={value}",)]
        outcome = invoke("simulate", "--bundle", bundle_dir, "--policy", "static-cascade",
                         "--trace", TINY_TRACE, "--workers", "4", *args, "--out", out, "--quiet")
        assert_complete_or_error(outcome, out, check_run_folder)
        event(f"exit {outcome.exit_code}")
    finally:
        shutil.rmtree(folder)


POLICY_KEYS = {
    "static-cascade": ("light", "heavy", "router_ratio", "disc_ratio", "light_workers"),
    "hadis": ("planner", "spare", "queue_alpha", "time_limit_s"),
    "cache-dq": ("demand_bucket_qps", "queue_bucket", "queue_alpha"),
    "proteus": ("queue_alpha",),
    "clipper-light": (),
}
OPTION_VALUES = st.one_of(
    number_texts(),
    st.sampled_from(["light", "heavy", "default", "faithful", "idle", "[1,2]", '{"a":1}',
                     "0.5", "0.2", "3", "true"]),
)


@examples(50)
@given(
    policy=st.sampled_from(list(POLICY_KEYS)),
    data=st.data(),
)
def test_policy_options(bundle_dir, policy, data):
    keys = (*POLICY_KEYS[policy], "bogus")
    options = data.draw(st.dictionaries(st.sampled_from(keys), OPTION_VALUES, max_size=3))
    folder = fresh_dir()
    try:
        out = folder / "run"
        args = [a for key, value in options.items() for a in ("--option", f"{key}={value}")]
        outcome = invoke("simulate", "--bundle", bundle_dir, "--policy", policy,
                         "--trace", TINY_TRACE, "--workers", "4", *args, "--out", out, "--quiet")
        assert_complete_or_error(outcome, out, check_run_folder)
        event(f"exit {outcome.exit_code}")
        if outcome.exit_code == 2 and "bogus" in options:
            assert "bogus" in outcome.stderr
    finally:
        shutil.rmtree(folder)


# ----------------------------------------------------------------------------- bundles

BUNDLE_FILES = ("bundle.json", "models.csv", "latency.csv", "prompts.csv", "scores.csv",
                "cascades.csv")


@st.composite
def corruptions(draw):
    name = draw(st.sampled_from(BUNDLE_FILES))
    kind = draw(st.sampled_from(["truncate", "bytes", "cell", "drop_line", "delete", "header"]))
    return name, kind, draw(st.integers(0, 10**6)), draw(number_texts())


def corrupt(folder: Path, name: str, kind: str, where: int, text: str) -> None:
    path = folder / name
    data = path.read_bytes()
    if kind == "truncate":
        path.write_bytes(data[: where % max(len(data), 1)])
    elif kind == "bytes":
        rng = np.random.default_rng(where)
        path.write_bytes(rng.bytes(where % 400))
    elif kind == "delete":
        path.unlink()
    else:
        lines = data.decode("utf-8").splitlines()
        k = where % len(lines)
        if kind == "drop_line":
            del lines[k]
        elif kind == "header":
            lines[0] = lines[0] + "," + lines[0].split(",")[0]
        else:
            cells = lines[k].split(",")
            cells[where % len(cells)] = text
            lines[k] = ",".join(cells)
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@examples(60)
@given(change=corruptions())
def test_bundle_corruptions(bundle_dir, change):
    folder = fresh_dir()
    try:
        bundle = folder / "b"
        shutil.copytree(bundle_dir, bundle)
        corrupt(bundle, *change)
        outcome = invoke("bundle", "info", bundle)
        event(f"exit {outcome.exit_code}")
        assert outcome.exit_code in (0, 2), outcome
        if outcome.exit_code == 2:
            assert_one_line_error(outcome)
        else:
            out = folder / "run"
            run = invoke("simulate", "--bundle", bundle, "--policy", "clipper-light",
                         "--trace", TINY_TRACE, "--workers", "2", "--out", out, "--quiet")
            assert_complete_or_error(run, out, check_run_folder)
    finally:
        shutil.rmtree(folder)


# ----------------------------------------------------------------------------- routers CSVs


@st.composite
def wide_csvs(draw) -> str:
    columns = draw(st.one_of(
        st.just(["prompt", "a", "b"]),
        st.lists(st.sampled_from(["prompt", "a", "b", "c", "", "a.1"]), min_size=1, max_size=4),
    ))
    n = draw(st.integers(0, 30))
    score = st.floats(0, 1).map(lambda v: f"{v:.3f}")
    table = [[draw(score) for _ in columns] for _ in range(n)]
    hostile = st.one_of(number_texts(), st.sampled_from(["", "x y", '"q, t"']))
    for _ in range(draw(st.integers(0, 2)) if n else 0):  # a few hostile cells
        table[draw(st.integers(0, n - 1))][draw(st.integers(0, len(columns) - 1))] = draw(hostile)
    rows = [",".join(row) for row in table]
    return "\n".join([",".join(columns), *rows]) + "\n"


@examples(150)
@given(text=wide_csvs())
def test_routers_csvs(text):
    folder = fresh_dir()
    try:
        path = folder / "wide.csv"
        path.write_text(text, encoding="utf-8")
        try:
            data = load_wide_csv(path)
        except RouterDataError as exc:
            event("refused")
            assert str(exc).startswith(str(path)) and "\n" not in str(exc)
            return
        assert np.isfinite(data.light_quality).all() and np.isfinite(data.heavy_quality).all()
        assert len(set(data.model_names)) == len(data.model_names) >= 2
        assert any(t.strip() for t in data.batch.texts) and len(data) >= 10
    finally:
        shutil.rmtree(folder)


# ----------------------------------------------------------------------------- sweep specs

YAML_VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10**20), 10**20),
    st.integers(0, 20),
    st.sampled_from(["hadis", "clipper-light", "x", "", None, True, [], {}]),
)


@st.composite
def sweep_specs(draw, bundle: str) -> dict:
    grid = {"policy": draw(st.sampled_from([["clipper-light"], ["clipper-light", "nope"], "x"]))}
    for axis in draw(st.lists(st.sampled_from(["slo_s", "load", "n_workers", "seed",
                                               "hardness"]), max_size=2, unique=True)):
        grid[axis] = draw(st.lists(YAML_VALUES, min_size=0, max_size=2))
    spec = {"bundle": bundle, "grid": grid,
            "trace": "constant:rate={load},duration=4" if "load" in grid else TINY_TRACE}
    if draw(st.booleans()):
        key = draw(st.sampled_from(["slo_s", "n_workers", "time_scale", "max_wait_s", "bogus"]))
        spec["sim"] = {key: draw(YAML_VALUES)}
    return spec


@examples(40)
@given(data=st.data())
def test_sweep_specs(bundle_dir, data):
    spec = data.draw(sweep_specs(str(bundle_dir)))
    folder = fresh_dir()
    try:
        path = folder / "spec.yaml"
        path.write_text(yaml.safe_dump(spec), encoding="utf-8")
        outcome = invoke("sweep", path, "--status", "--out", folder / "store")
        assert outcome.seconds < 60
        event(f"exit {outcome.exit_code}")
        if outcome.exit_code == 0:
            assert re.match(r"0 / \d+ runs done", outcome.stdout), outcome.stdout
        else:
            assert_one_line_error(outcome)
        assert not (folder / "store").exists()  # --status writes nothing
    finally:
        shutil.rmtree(folder)


def test_every_summary_json_is_strict(bundle_dir, tmp_path):
    """A run where nothing completes (NaN latencies and FID) still writes strict JSON."""
    out = tmp_path / "run"
    outcome = invoke("simulate", "--bundle", bundle_dir, "--policy", "clipper-heavy",
                     "--trace", TINY_TRACE, "--slo", "0.001", "--out", out, "--quiet")
    assert outcome.exit_code == 0, outcome
    summary = strict_json(out / "summary.json")
    assert summary["fid"] is None and summary["ok"] == 0
