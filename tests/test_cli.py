"""Every `t2isim` command end to end, byte-identical reruns, and one-line input errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest
from bundle_factory import make_bundle
from typer.testing import CliRunner

from experiments.cli import app
from simulator.bundle import load_bundle, write_bundle

runner = CliRunner()
RUN_FILES = ("queries.parquet", "timeseries.csv", "summary.json", "config.json")


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory):
    return write_bundle(make_bundle(), tmp_path_factory.mktemp("bundle") / "b")


def invoke(*args: str):
    result = runner.invoke(app, [str(a) for a in args])
    return result


def simulate_args(bundle_dir, out, *extra):
    return (
        "simulate",
        "--bundle",
        bundle_dir,
        "--policy",
        "static-cascade",
        "--trace",
        "poisson:rate=2,duration=120",
        "--workers",
        "6",
        "--slo",
        "20",
        "--out",
        out,
        "--quiet",
        *extra,
    )


def test_simulate_writes_complete_run_and_reruns_byte_identical(bundle_dir, tmp_path):
    for name in ("a", "b"):
        result = invoke(*simulate_args(bundle_dir, tmp_path / name))
        assert result.exit_code == 0, result.output
    for file in RUN_FILES:
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes(), file
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    required = {
        "arrivals",
        "ok",
        "timeouts",
        "drops",
        "slo_violation_ratio",
        "fid",
        "p50_latency_s",
        "p99_latency_s",
        "heavy_share",
        "gpu_seconds",
        "plan_share",
        "hashes",
    }
    assert required <= set(summary)
    assert set(summary["hashes"]) == {"config", "bundle", "trace", "code_version"}
    assert summary["ok"] + summary["timeouts"] + summary["drops"] == summary["arrivals"]
    assert list(summary["plan_share"]) == ["light->heavy"]
    queries = pd.read_parquet(tmp_path / "a" / "queries.parquet")
    assert len(queries) == summary["arrivals"]
    assert set(queries["outcome"].astype(str)) <= {"ok", "timeout", "drop"}


def test_seed_changes_the_run(bundle_dir, tmp_path):
    invoke(*simulate_args(bundle_dir, tmp_path / "a"))
    invoke(*simulate_args(bundle_dir, tmp_path / "b", "--seed", "1"))
    a, b = (json.loads((tmp_path / x / "summary.json").read_text()) for x in ("a", "b"))
    # the seed redraws the generated trace (not only the config hash) and the service draws
    assert a["hashes"]["trace"] != b["hashes"]["trace"]
    qa, qb = (pd.read_parquet(tmp_path / x / "queries.parquet") for x in ("a", "b"))
    assert len(set(qa.arrival_s.round(9)) & set(qb.arrival_s.round(9))) == 0
    assert abs(a["arrivals"] - b["arrivals"]) < 0.5 * a["arrivals"]  # same rate, other draws


def test_simulate_plot(bundle_dir, tmp_path):
    result = invoke(*simulate_args(bundle_dir, tmp_path / "p", "--plot"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "p" / "timeseries.png").stat().st_size > 10_000


@pytest.mark.parametrize(
    "change, message",
    [
        (("--policy", "nope"), "unknown policy 'nope'"),
        (("--trace", "poisson:rate=2"), "missing key 'duration'"),
        (("--trace", "zigzag:rate=2"), "unknown kind 'zigzag'"),
        (("--bundle", "/nonexistent/bundle"), "no such bundle folder"),
        (("--slo", "0"), "slo_s (--slo): 0 is not a finite number >= 0.001"),
        (("--option", "light=ghost"), "unknown model 'ghost'"),
    ],
)
def test_bad_input_is_one_line_exit_2(bundle_dir, tmp_path, change, message):
    args = list(simulate_args(bundle_dir, tmp_path / "bad"))
    flag = change[0]
    if flag in args:
        args[args.index(flag) + 1] = change[1]
    else:
        args.extend(change)
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.output
    assert not (tmp_path / "bad").exists()


def test_real_process_prints_no_traceback(bundle_dir, tmp_path):
    args = simulate_args(bundle_dir, tmp_path / "bad")
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.cli", *map(str, args), "--policy", "nope"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: unknown policy 'nope'")
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_bad_trace_file_names_line(bundle_dir, tmp_path):
    trace = tmp_path / "t.csv"
    trace.write_text("arrival_s,prompt_idx\n0.5,1\n0.2,x\n")
    result = invoke(*simulate_args(bundle_dir, tmp_path / "o"), "--trace", trace)
    assert result.exit_code == 2
    assert "line 3" in result.output


def test_corrupt_bundle_names_file_row_column(tmp_path):
    folder = write_bundle(make_bundle(), tmp_path / "b")
    latency = pd.read_csv(folder / "latency.csv")
    latency.loc[2, "latency_p50_s"] = 0.01  # faster at a larger batch than at batch 2
    latency.to_csv(folder / "latency.csv", index=False)
    result = invoke("bundle", "info", folder)
    assert result.exit_code == 2
    assert "latency.csv: row 3: column latency_p50_s" in result.output


def test_trace_command_round_trips(bundle_dir, tmp_path):
    for fmt in ("csv", "artifact"):
        path = tmp_path / f"t.{fmt}"
        result = invoke(
            "trace",
            "phases:rates=1/3,phase_s=20",
            "--bundle",
            bundle_dir,
            "--out",
            path,
            "--format",
            fmt,
        )
        assert result.exit_code == 0, result.output
        run = invoke(*simulate_args(bundle_dir, tmp_path / f"run-{fmt}"), "--trace", path)
        assert run.exit_code == 0, run.output


def test_bundle_info_export_write(bundle_dir, tmp_path):
    info = invoke("bundle", "info", bundle_dir)
    assert info.exit_code == 0 and "light" in info.output and "cascades" in info.output
    exported = tmp_path / "cascades.csv"
    result = invoke("bundle", "export", bundle_dir, "--table", "cascades", "--out", exported)
    assert result.exit_code == 0
    assert len(pd.read_csv(exported)) == 2 * 0 + 121
    copy = tmp_path / "copy"
    assert invoke("bundle", "write", bundle_dir, copy).exit_code == 0
    assert load_bundle(copy).content_hash() == load_bundle(bundle_dir).content_hash()


def test_policies_lists_core_baselines():
    result = invoke("policies")
    assert result.exit_code == 0
    for name in ("clipper-light", "clipper-heavy", "static-cascade"):
        assert name in result.output


def test_outputs_never_replace_an_unrelated_folder(bundle_dir, tmp_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    result = invoke(*simulate_args(bundle_dir, precious))
    assert result.exit_code == 2 and "refusing to replace" in result.output
    assert invoke("bundle", "write", bundle_dir, precious).exit_code == 2
    assert (precious / "notes.txt").read_text() == "keep me"
    # an older run folder is replaced
    run = tmp_path / "run"
    assert invoke(*simulate_args(bundle_dir, run)).exit_code == 0
    assert invoke(*simulate_args(bundle_dir, run, "--seed", "3")).exit_code == 0
