"""The fuzz classes of issue 15, one table each: every bad input is one line and exit 2, naming
the input, the value and what is allowed; no output is written, nothing is half-written."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from bundle_factory import make_bundle
from hostile import (
    assert_one_line_error,
    check_run_folder,
    invoke,
    no_staging_left,
    strict_json,
)

from simulator.bundle import write_bundle
from simulator.errors import MAX_ERROR_CHARS, one_line

TINY_TRACE = "constant:rate=1,duration=6"


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory):
    return write_bundle(make_bundle(), tmp_path_factory.mktemp("bundle") / "b")


def simulate(bundle_dir, out, *extra):
    return invoke(
        "simulate", "--bundle", bundle_dir, "--policy", "static-cascade", "--trace", TINY_TRACE,
        "--workers", "4", "--slo", "30", "--out", out, "--quiet", *extra,
    )


# ----------------------------------------------------------------------------- sizes and numbers


@pytest.mark.parametrize(
    ("extra", "fragments"),
    [
        (("--trace", "constant:rate=1e12,duration=30"),
         ("3e+13 queries in a trace exceeds the bound of 2000000", "T2ISIM_MAX_QUERIES")),
        (("--trace", "poisson:rate=8,duration=1e12"),
         ("1e+12 simulated seconds exceeds the bound of 172800", "T2ISIM_MAX_SIM_S")),
        (("--workers", "1000000"),
         ("n_workers (--workers): 1000000 GPU workers exceeds the bound of 1024",
          "T2ISIM_MAX_WORKERS")),
        (("--time-scale", "1e-300"), ("time_scale (--time-scale): 1e-300 is not",)),
        (("--time-scale", "inf"), ("time_scale (--time-scale): inf is not a finite number",)),
        (("--slo", "inf"), ("slo_s (--slo): inf is not a finite number >= 0.001",)),
        (("--slo", "nan"), ("slo_s (--slo): nan is not a finite number",)),
        (("--max-wait", "inf"), ("max_wait_s (--max-wait): inf is not a finite number >= 0",)),
        (("--load-s", "inf"), ("load_s (--load-s): inf is not a finite number >= 0",)),
        (("--load-s", "1e9"), ("load_s (--load-s): 1e+09 simulated seconds exceeds",)),
        (("--plan-interval", "0.5"), ("plan_interval_s (--plan-interval): 0.5 must be >= tick_s",)),
        (("--seed", "-1"), ("seed (--seed): -1 is not an integer in [0, ",)),
        (("--trace", "poisson:rate=1_0,duration=5"), ("key 'rate': '1_0' is not a finite",)),
    ],
)
def test_numbers_and_sizes(bundle_dir, tmp_path, extra, fragments):
    outcome = simulate(bundle_dir, tmp_path / "run", *extra)
    assert_one_line_error(outcome, *fragments)
    assert not (tmp_path / "run").exists()


def test_size_bounds_are_raised_by_their_environment_variable(bundle_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("T2ISIM_MAX_QUERIES", "3")
    assert_one_line_error(
        simulate(bundle_dir, tmp_path / "run"), "6 queries in a trace exceeds the bound of 3"
    )
    monkeypatch.setenv("T2ISIM_MAX_QUERIES", "6")
    assert simulate(bundle_dir, tmp_path / "run").exit_code == 0
    monkeypatch.setenv("T2ISIM_MAX_QUERIES", "lots")
    assert_one_line_error(
        simulate(bundle_dir, tmp_path / "again"), "T2ISIM_MAX_QUERIES='lots': expected a finite"
    )


def test_trace_file_with_huge_last_arrival_is_refused_before_simulating(bundle_dir, tmp_path):
    trace = tmp_path / "t.csv"
    trace.write_text("arrival_s,prompt_idx\n1e308,0\n")
    outcome = simulate(bundle_dir, tmp_path / "run", "--trace", trace)
    assert_one_line_error(outcome, "1e+308 simulated seconds exceeds the bound of 172800")
    assert outcome.seconds < 30


def test_an_error_echoing_a_huge_line_is_bounded(bundle_dir, tmp_path):
    """The trace's 60,000-character first line is echoed in part: the line keeps its start
    (the file, the line) and its end (what was expected)."""
    trace = tmp_path / "t.csv"
    trace.write_text("[" * 30_000 + "]" * 30_000 + "\n")
    outcome = simulate(bundle_dir, tmp_path / "run", "--trace", trace)
    assert_one_line_error(outcome, f"{trace}: line 1: unrecognised header '[[[")
    (line,) = outcome.error_lines
    assert len(line) <= len("error: ") + MAX_ERROR_CHARS + 60
    assert "characters left out" in line and line.endswith("'arrival_ms,prompt_idx'")


def test_input_files_nested_past_the_recursion_limit_are_one_line(bundle_dir, tmp_path):
    """JSON and YAML nested thousands deep: one error naming the file, not a RecursionError."""
    deep = "[" * 30_000 + "]" * 30_000
    bundle = tmp_path / "bundle"
    write_bundle(make_bundle(), bundle)
    meta = (bundle / "bundle.json").read_text().rstrip()
    (bundle / "bundle.json").write_text(meta[:-1] + ', "deep": ' + deep + "}")
    outcome = simulate(bundle, tmp_path / "run")
    assert_one_line_error(outcome, "bundle.json: invalid JSON (nested too deeply to read)")
    spec = tmp_path / "spec.yaml"
    spec.write_text("grid: " + deep + "\n")
    outcome = invoke("sweep", spec, "--out", tmp_path / "store")
    assert_one_line_error(outcome, "spec.yaml: invalid YAML (nested too deeply to read)")
    outcome = simulate(bundle_dir, tmp_path / "run", "--option", "router=" + deep)
    assert_one_line_error(outcome, "router")


def test_one_line_collapses_whitespace_and_leaves_out_the_middle():
    assert one_line(" a\n\tb  c ") == "a b c"
    assert one_line("x" * 10, limit=10) == "x" * 10
    text = "a" * 50 + "b" * 40 + "c" * 30
    assert one_line(text, limit=30) == "a" * 20 + " … (90 characters left out) … " + "c" * 10


@pytest.mark.parametrize(
    ("row", "fragment"),
    [
        ("1_0,0", "field arrival_s: '1_0' is not a finite decimal"),
        ("inf,0", "field arrival_s: 'inf' is not a finite decimal"),
        ("NaN,0", "field arrival_s: 'NaN' is not a finite decimal"),
        ("1.0,1_0", "field prompt_idx: '1_0' is not an integer"),
    ],
)
def test_trace_file_values_are_plain_decimals(bundle_dir, tmp_path, row, fragment):
    trace = tmp_path / "t.csv"
    trace.write_text(f"arrival_s,prompt_idx\n0.5,1\n{row}\n")
    assert_one_line_error(invoke("trace", trace, "--out", tmp_path / "o.csv",
                                 "--bundle", bundle_dir), "line 3: " + fragment)
    assert not (tmp_path / "o.csv").exists()


# ----------------------------------------------------------------------------- policy options


@pytest.mark.parametrize(
    ("policy", "option", "fragment"),
    [
        ("static-cascade", "router_ratio=abc",
         "static-cascade: option router_ratio: 'abc' is not a finite number in [0, 1]"),
        ("static-cascade", "router_ratio=2", "option router_ratio: 2 is not a finite number"),
        ("static-cascade", "disc_ratio=-0.5", "option disc_ratio: -0.5 is not"),
        ("static-cascade", "light_workers=abc", "option light_workers: 'abc' is not an integer"),
        ("static-cascade", "light_workers=[1,2]", "option light_workers: [1, 2] is not an integer"),
        ("clipper-light", "bogus=1", "clipper-light: unknown option(s) bogus"),
        ("clipper-heavy", "router_ratio=0.5", "clipper-heavy: unknown option(s) router_ratio"),
        ("hadis", "queue_alpha=-1", "hadis: option queue_alpha: -1 is not a finite number"),
        ("hadis", "time_limit_s=inf", "hadis: option time_limit_s: 'inf' is not"),
        ("hadis", "time_limit_s=0.001", "option time_limit_s: 0.001 is not a finite number in"),
        ("hadis", "planner=magic", "option planner: 'magic' is not one of default, faithful"),
        ("cache-d", "demand_bucket_qps=0", "cache-d: option demand_bucket_qps: 0 is not"),
        ("cache-dq", "demand_bucket_qps=5e-324", "option demand_bucket_qps: 4.94066e-324 is not"),
        ("proteus", "queue_alpha=NaN", "proteus: option queue_alpha: nan is not"),
        ("diffserve", "light=nope", "diffserve: option light: 'nope' is not one of"),
        ("diffserve", "bogus=1", "known: artifact_revision, demand_signal, heavy, light,"),
    ],
)
def test_policy_options_are_typed_and_named(bundle_dir, tmp_path, policy, option, fragment):
    outcome = simulate(bundle_dir, tmp_path / "run", "--policy", policy, "--option", option)
    assert_one_line_error(outcome, fragment)


# ----------------------------------------------------------------------------- output paths


@pytest.mark.parametrize(
    ("command", "fragment"),
    [
        (lambda b, t: ("simulate", "--bundle", b, "--trace", TINY_TRACE, "--out",
                       t / "afile.txt" / "sub", "--quiet"), "afile.txt is a file, not a folder"),
        (lambda b, t: ("simulate", "--bundle", b, "--trace", TINY_TRACE, "--out",
                       t / "unrelated", "--quiet"), "exists and is not a folder this command"),
        (lambda b, t: ("simulate", "--bundle", b, "--trace", TINY_TRACE, "--out",
                       t / "afile.txt", "--quiet"), "exists and is a file; give a folder path"),
        (lambda b, t: ("bundle", "export", b, "--table", "models", "--out", t / "unrelated"),
         "is a folder; give a file path"),
        (lambda b, t: ("bundle", "write", b, t / "afile.txt" / "sub"),
         "afile.txt is a file, not a folder"),
        (lambda b, t: ("bundle", "write", b, t / "unrelated"), "(no bundle.json)"),
        (lambda b, t: ("trace", TINY_TRACE, "--bundle", b, "--out", t / "afile.txt" / "x.csv"),
         "afile.txt is a file, not a folder"),
        (lambda b, t: ("trace", TINY_TRACE, "--bundle", b, "--out", t), "is a folder"),
        (lambda b, t: ("figures", "--bundle", b, "--quick", "--out", t / "afile.txt"),
         "exists and is a file"),
        (lambda b, t: ("figures", "--bundle", b, "--quick", "--out", t / "unrelated"),
         "(no REPRODUCTION.md)"),
        (lambda b, t: ("sweep", t / "spec.yaml", "--out", t / "afile.txt"), "exists and is a file"),
        (lambda b, t: ("sweep", t / "spec.yaml", "--out", t / "unrelated"), "(no parts)"),
        (lambda b, t: ("calibrate", t, "--out", t / "unrelated"), "is a folder"),
        (lambda b, t: ("profile", "all", "--tiny", "--out", t / "afile.txt" / "w"),
         "afile.txt is a file, not a folder"),
        (lambda b, t: ("profile", "all", "--tiny", "--out", t / "afile.txt"),
         "exists and is a file; give a work folder"),
        (lambda b, t: ("profile", "build-table", "--name", "x", "--work", t / "w", "--out",
                       t / "unrelated"), "(no bundle.json)"),
        (lambda b, t: ("profile", "prompt-features", "--work", t / "w", "--out", t),
         "is a folder; give a file path"),
    ],
)
def test_output_paths_are_checked_before_any_work(bundle_dir, tmp_path, command, fragment):
    (tmp_path / "afile.txt").write_text("x")
    (tmp_path / "unrelated").mkdir()
    (tmp_path / "unrelated" / "mine.txt").write_text("keep")
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(
        {"bundle": str(bundle_dir), "trace": TINY_TRACE, "grid": {"policy": ["clipper-light"]}}
    ))
    before = sorted(p.name for p in tmp_path.iterdir())
    outcome = invoke(*command(bundle_dir, tmp_path))
    assert_one_line_error(outcome, fragment)
    assert outcome.seconds < 20  # refused up front, not after the work
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert (tmp_path / "unrelated" / "mine.txt").read_text() == "keep"


def test_simulate_plot_is_inside_the_atomic_folder_and_stale_staging_is_cleaned(
    bundle_dir, tmp_path
):
    stale = tmp_path / ".run.staging-999999999-abc"  # a killed run's (no such process)
    stale.mkdir()
    (stale / "queries.parquet").write_text("half")
    outcome = simulate(bundle_dir, tmp_path / "run", "--plot")
    assert outcome.exit_code == 0, outcome
    check_run_folder(tmp_path / "run")
    assert (tmp_path / "run" / "timeseries.png").stat().st_size > 10_000
    assert not stale.exists()
    no_staging_left(tmp_path)


def test_summary_json_is_strict_json_when_no_query_completes(bundle_dir, tmp_path):
    """Every query dropped (an SLO shorter than any batch): latency percentiles and FID are
    undefined, written as null, never NaN."""
    outcome = simulate(bundle_dir, tmp_path / "run", "--slo", "0.01")
    assert outcome.exit_code == 0, outcome
    summary = strict_json(tmp_path / "run" / "summary.json")
    assert summary["ok"] == 0 and summary["drops"] + summary["timeouts"] == summary["arrivals"]
    assert summary["p50_latency_s"] is None


# ----------------------------------------------------------------------------- usage errors


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("simulate", "--workers", "abc", "--out", "x"),
         "n_workers (--workers): 'abc' is not an integer >= 1"),
        (("simulate", "--workers=abc", "--out", "x"), "(--workers): 'abc' is not an integer"),
        (("simulate", "--dispatch", "foo", "--out", "x"),
         "dispatch (--dispatch): 'foo' is not one of random, jsq, central"),
        (("simulate", "--wrkers", "3", "--out", "x"), "No such option: --wrkers"),
        (("simulate",), "Missing option '--out'"),
        (("figures", "--replicate-seeds", "-1"), "'--replicate-seeds'"),
        (("figures", "--jobs", "0"), "'--jobs': Input should be greater than or equal to 1 (got"),
        (("figures", "--only", ""), "--only '': expected comma-separated figure names"),
        (("figures", "--only", "fig07,,fig11"), "--only 'fig07,,fig11'"),
        (("bundle", "export", "default", "--table", "nope"), "'nope' is not one of"),
    ],
)
def test_usage_errors_are_one_line(args, fragment):
    assert_one_line_error(invoke(*args), fragment)


def test_no_arguments_prints_help_and_exits_0():
    outcome = invoke()
    assert outcome.exit_code == 0 and "simulate" in outcome.stdout and not outcome.stderr


# ----------------------------------------------------------------------------- sweeps


def test_binary_sweep_spec_is_one_line(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_bytes(bytes(range(256)))
    assert_one_line_error(invoke("sweep", spec, "--status"), "not a UTF-8 text file")


def test_corrupt_sweep_parts_are_reported_and_rerun(bundle_dir, tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({
        "bundle": str(bundle_dir), "trace": TINY_TRACE,
        "grid": {"policy": ["clipper-light", "clipper-heavy", "static-cascade"]},
    }))
    store = tmp_path / "store"
    first = invoke("sweep", spec, "--out", store, "--jobs", "1", "--quiet")
    assert first.exit_code == 0, first
    parts = sorted((store / "parts").glob("*.parquet"))
    good = pd.read_parquet(parts[2])
    parts[0].write_bytes(b"")  # empty
    parts[1].write_bytes(np.random.default_rng(0).bytes(300))  # random bytes
    pq.write_table(pa.table({"run_key": [parts[2].stem] * 2}), parts[2])  # wrong schema
    status = invoke("sweep", spec, "--out", store, "--status")
    assert status.exit_code == 0, status
    assert "0 / 3 runs done" in status.stdout
    assert status.stdout.count("corrupt part") == 3 and "not done" in status.stdout
    again = invoke("sweep", spec, "--out", store, "--jobs", "1", "--quiet")
    assert again.exit_code == 0, again
    assert again.stdout.count(": re-running") == 3 and "3 ran" in again.stdout
    assert "3 / 3 runs done" in invoke("sweep", spec, "--out", store, "--status").stdout
    rerun = pd.read_parquet(parts[2])
    assert rerun.drop(columns="wall_s").equals(good.drop(columns="wall_s"))


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"sim": {"slo_s": float("inf")}}, "slo_s (--slo): inf is not a finite number"),
        ({"sim": {"n_workers": 10**6}}, "GPU workers exceeds the bound of 1024"),
        ({"trace": "poisson:rate=8,duration=1e12"}, "simulated seconds exceeds the bound"),
        ({"grid": {"policy": ["hadis"], "seed": [-1]}}, "grid: seed (--seed): -1 is not an"),
        ({"policy_options": {"clipper-light": {"x": 1}}}, "clipper-light: unknown option(s) x"),
    ],
)
def test_sweep_spec_numbers_are_validated(bundle_dir, tmp_path, change, fragment):
    spec = {"bundle": str(bundle_dir), "trace": TINY_TRACE, "grid": {"policy": ["clipper-light"]}}
    spec.update(change)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert_one_line_error(invoke("sweep", path, "--status"), fragment)


# ----------------------------------------------------------------------------- routers CSV


def _wide_rows(n=40):
    rng = np.random.default_rng(1)
    return [f"prompt {i},{rng.random():.3f},{rng.random():.3f}" for i in range(n)]


@pytest.mark.parametrize(
    ("header", "edit", "fragment"),
    [
        ("prompt,a,a", None, "line 1: column 'a' appears 2 times"),
        ("prompt,a,b", lambda rows: ["," + r.split(",", 1)[1] for r in rows],
         "column 'prompt' is empty in every row"),
        ("prompt,a,b", lambda rows: [*rows[:3], "x,nan,0.5", *rows[3:]],
         "line 5: column 'a' value 'nan' is nan/inf"),
        ("prompt,a,b", lambda rows: [*rows[:3], "x,0.5,-inf", *rows[3:]],
         "line 5: column 'b' value '-inf' is nan/inf"),
        ("prompt,a,b", lambda rows: [*rows[:3], "x,0.5,1_0", *rows[3:]],
         "line 5: column 'b' value '1_0' is not a number"),
    ],
)
def test_routers_csv_problems_are_named(tmp_path, header, edit, fragment):
    rows = _wide_rows()
    rows = edit(rows) if edit else rows
    data = tmp_path / "wide.csv"
    data.write_text("\n".join([header, *rows]) + "\n")
    outcome = invoke("routers", "evaluate", "--data", data, "--out", tmp_path / "ev",
                     "--routers", "random")
    assert_one_line_error(outcome, fragment)
    assert not (tmp_path / "ev").exists()


def test_routers_evaluate_refuses_an_unrelated_folder_and_writes_atomically(tmp_path):
    data = tmp_path / "wide.csv"
    data.write_text("\n".join(["prompt,a,b", *_wide_rows()]) + "\n")
    (tmp_path / "unrelated").mkdir()
    (tmp_path / "unrelated" / "mine.txt").write_text("keep")
    args = ("routers", "evaluate", "--data", data, "--routers", "random", "--features", "bow")
    assert_one_line_error(invoke(*args, "--out", tmp_path / "unrelated"), "(no routers.csv)")
    outcome = invoke(*args, "--out", tmp_path / "ev")
    assert outcome.exit_code == 0, outcome
    written = sorted(p.name for p in (tmp_path / "ev").iterdir())
    assert written == ["calibration.csv", "curves.csv", "quality_vs_share.png", "routers.csv"]
    no_staging_left(tmp_path)
    assert json.dumps(written)  # listed in full: nothing else was left in the folder


# ----------------------------------------------------------------------------- the error group


def _group_app():
    import warnings

    import typer

    from experiments.cli_errors import OneLineErrors
    from simulator.errors import InputError

    app = typer.Typer(cls=OneLineErrors)

    @app.command()
    def warn_then_fail() -> None:
        warnings.warn("overflow encountered in multiply", RuntimeWarning, stacklevel=1)
        raise InputError("--x 3: not allowed")

    @app.command()
    def warn_then_succeed() -> None:
        warnings.warn("overflow encountered in multiply", RuntimeWarning, stacklevel=1)
        warnings.warn("overflow encountered in multiply", RuntimeWarning, stacklevel=1)
        print("done")

    @app.command()
    def deprecations() -> None:
        for module in ("ray.serve.schema", "serving.workers"):
            warnings.warn_explicit(
                f"{module} is deprecated", DeprecationWarning, f"{module}.py", 1, module=module
            )

    @app.command()
    def unreadable() -> None:
        open("/no/such/dir/file.txt")  # noqa: SIM115

    return app


def test_warnings_are_dropped_before_an_error_line_and_shown_once_on_success():
    from typer.testing import CliRunner

    runner = CliRunner()
    failed = runner.invoke(_group_app(), ["warn-then-fail"])
    assert failed.exit_code == 2 and failed.stderr == "error: --x 3: not allowed\n"
    ok = runner.invoke(_group_app(), ["warn-then-succeed"])
    assert ok.exit_code == 0 and ok.stdout == "done\n"
    assert ok.stderr == "warning: overflow encountered in multiply\n"
    # a library's deprecation is not the user's to act on; this project's is shown
    deprecated = runner.invoke(_group_app(), ["deprecations"])
    assert deprecated.exit_code == 0
    assert deprecated.stderr == "warning: serving.workers is deprecated\n"
    missing = runner.invoke(_group_app(), ["unreadable"])
    assert missing.exit_code == 2
    assert missing.stderr == "error: /no/such/dir/file.txt: No such file or directory\n"


def test_sub_command_modules_do_not_import_the_cli():
    """experiments.cli imports sweep_cli and figures_cli, never the other way round."""
    import subprocess
    import sys

    code = (
        "import sys, experiments.sweep_cli, experiments.figures_cli; "
        "print('experiments.cli' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr


def test_quiet_means_quiet_in_a_real_process(bundle_dir, tmp_path):
    """No HiGHS banner (printed by C code, outside Python's streams) and nothing else."""
    import subprocess
    import sys

    args = ["simulate", "--bundle", str(bundle_dir), "--policy", "hadis", "--trace", TINY_TRACE,
            "--workers", "4", "--out", str(tmp_path / "run"), "--quiet"]
    result = subprocess.run([sys.executable, "-m", "experiments.cli", *args],
                            capture_output=True, text=True)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    bad = subprocess.run([sys.executable, "-m", "experiments.cli", *args, "--workers", "abc"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.startswith("error: n_workers (--workers): 'abc'") and (
        bad.stderr.count("\n") == 1
    )


@pytest.mark.parametrize("command", ["figures", "sweep"])
def test_bad_dask_address_is_refused_before_any_work(bundle_dir, tmp_path, command):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(
        {"bundle": str(bundle_dir), "trace": TINY_TRACE, "grid": {"policy": ["clipper-light"]}}
    ))
    args = ["figures", "--quick", "--out", tmp_path / "figs"] if command == "figures" else [
        "sweep", spec, "--out", tmp_path / "store"]
    outcome = invoke(*args, "--dask", "myhost:8786")
    assert_one_line_error(outcome, "--dask 'myhost:8786': expected 'local' or a scheduler address")
    assert not (tmp_path / "figs").exists() and not (tmp_path / "store").exists()
