"""benchmarks/arrival_counting.py: a validation folder's real runs' recorded arrival rates
against simulations that count a query at its trace time or after its arrival hop. A
stand-in "real" run simulated with the second counting is found on it, to the bit."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

import policies  # noqa: F401  (registers the adaptive policies)
from experiments.inputs import resolve_bundle, resolve_trace
from serving.hops import with_overheads
from serving.loadgen import planner_log_writer
from simulator.config import SimConfig
from simulator.results import write_run
from simulator.run import run_simulation
from tests.benchmark_scripts import run_benchmark
from tests.script_module import load_script

ROOT = Path(__file__).resolve().parents[1]

TRACE = "azure:peak=24,min=1,seconds_per_hour=0.2"
HOPS = {"arrival_overhead_ms": 4.0, "dispatch_overhead_ms": 6.0}


def write_folder(folder, config: SimConfig, name: str) -> None:
    bundle = with_overheads(resolve_bundle("default"), HOPS)
    trace = resolve_trace(TRACE, bundle, config.seed)
    run = run_simulation(bundle, trace, "hadis", config, planner_bundle=bundle)
    summary = {**run.summary, "trace_spec": TRACE, "bundle_source": "default"}
    writer = planner_log_writer(run.raw, bundle.model_names, config.tick_s)
    write_run(folder / name, run.queries, run.timeseries, summary, run.config, [], [writer])


def test_a_run_counted_after_its_arrival_hop_is_found_closer_to_that_counting(tmp_path):
    config = SimConfig(n_workers=16, slo_s=16.0, time_scale=0.1, dispatch="jsq")
    write_folder(tmp_path, dataclasses.replace(config, route_at="arrival"), "sim")
    write_folder(tmp_path, dataclasses.replace(config, route_at="ingress"), "real-1")
    (tmp_path / "overheads.json").write_text(json.dumps(HOPS))
    done = run_benchmark(
        "arrival_counting.py", "--folder", str(tmp_path), "--replicates", "2", "--call", "6"
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    row = next(line for line in lines if line.startswith("  real-1: "))
    assert row.endswith("ingress 0.0000 qps") and "arrival 0.0000" not in row
    assert any(line.startswith("  plans at call 6, real (1 runs): 1 x ") for line in lines)
    values = dict(part.split("=") for part in lines[-1].split())
    assert values["runs_closer_to_ingress"] == "1/1" and float(values["ingress_mean_qps"]) == 0
    real_p50_s = json.loads((tmp_path / "real-1" / "summary.json").read_text())["p50_latency_s"]
    assert float(values["real_p50_s"]) == round(real_p50_s, 4)
    assert values["real_p50_se_s"] == "nan"  # one real run
    assert float(values["ingress_p50_se_s"]) >= 0 and "arrival_p50_s" in values


def test_the_countings_are_compared_over_the_same_calls(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # its sibling arrival_timing
    script = load_script(ROOT / "benchmarks" / "arrival_counting.py", "arrival_counting_test")

    def run(rates, plans):
        return script.Run(np.array(rates, dtype=np.float64)[:, None], list(plans), 1.0)

    real = run([1, 1, 1, 1, 1], "aaaaa")
    arrival = run([1, 2, 1, 1, 9], "aaaab")  # parts at call 4
    ingress = run([1, 1, 1, 5, 5], "aabbb")  # parts at call 2: its inputs there still compare
    calls = script.comparable_calls(real, [arrival, ingress], through_call=6)
    assert calls == 3  # calls 0-2 for both, not 0-4 for the counting that parts later
    assert script.distance_qps(real, arrival, calls) == 1 / 3
    assert script.distance_qps(real, ingress, calls) == 0
    assert script.comparable_calls(real, [real], through_call=1) == 2
    assert script.mean_se([1.0, 3.0]) == (2.0, 1.0)


def test_runs_without_recorded_inputs_are_refused_in_one_line(tmp_path):
    config = SimConfig(n_workers=16, slo_s=16.0, time_scale=0.1, dispatch="jsq")
    write_folder(tmp_path, config, "sim")
    write_folder(tmp_path, config, "real-1")
    (tmp_path / "real-1" / "observations.csv").unlink()  # a run before session 45
    done = run_benchmark("arrival_counting.py", "--folder", str(tmp_path))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "real-1" in done.stderr
    assert "observations.csv" in done.stderr
