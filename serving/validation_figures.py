"""Figures of the simulator against the real serving path, drawn from what `t2isim validate`
and `benchmarks/validation_report.py` write (`results/validation/`), for the validation
notebook and a paper:

- `plot_latency_cdfs`: per experiment, the latency CDF of each real run and of the simulation
  (completed queries, as the fidelity table's quantiles count them), with the p50 error;
- `plot_speed_bins`: per diffusers set, the workers' CPU per batch of one in 10-s bins of
  each real run (`speed_bins.csv`) against the profile's p50 after idle;
- `plot_preregistered`: the p50 error of every pre-registered tiny experiment
  (`preregistered.csv`) against the goal, with the held-out served error beside it;
- `plot_overhead_runs`: the serving path's overhead p99 at 100 QPS of every run in its ledger
  (`serve_overhead.csv`, `serving.overhead_ledger`) against the goal, marked by whether the
  run had its 2 cores.

Each reader fails with `ValidationResultError` naming the missing file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from experiments.figures.style import COLUMN_IN, ROW_IN, new_figure
from serving.fidelity import TINY_P50_GOAL_PCT, completed_latency_s
from serving.fidelity_note import SPEED_FILE
from serving.overhead_ledger import GOAL_P99_MS, REFERENCE_QPS, on_two_cores

REAL_COLOR, SIM_COLOR = "0.55", "#c0392b"
# every tiny experiment judged on a rule written down before it ran, one row each (hand-kept
# from the sessions' notes, HISTORY.md; rows with a folder are checked against its
# fidelity.csv by the tests)
PREREGISTERED = "preregistered.csv"


class ValidationResultError(ValueError):
    """A file the validation figures need is not there."""


def _need(path: Path) -> Path:
    if not path.is_file():
        raise ValidationResultError(
            f"{path.name} not found in {path.parent}: run `t2isim validate` (or "
            "`python benchmarks/validation_report.py --run`) there first"
        )
    return path


def experiments(folder: Path) -> list[str]:
    """The experiments under `folder` that `t2isim validate` reported (a fidelity.csv and
    real runs), in name order; ValidationResultError when there is none."""
    found = sorted(
        d.name
        for d in (folder.iterdir() if folder.is_dir() else ())
        if (d / "fidelity.csv").is_file() and (d / "real-1").is_dir()
    )
    if not found:
        raise ValidationResultError(
            f"no `t2isim validate` output (DIR/fidelity.csv and DIR/real-1/) in {folder}: "
            "set T2ISIM_VALIDATION to the folder holding your --out folders"
        )
    return found


def goals_table(folder: Path, names: list[str]) -> pd.DataFrame:
    """Per experiment, the p50 and p99 errors (%) with the real runs' spread (sample std, %)
    and where the simulated p50 sits among the real latencies (`real_level`, 50 if exact)."""
    rows = []
    for name in names:
        table = pd.read_csv(_need(folder / name / "fidelity.csv")).set_index("metric")
        p50, p99 = table.loc["p50_latency_s"], table.loc["p99_latency_s"]
        rows.append(
            {
                "experiment": name,
                "p50_error_pct": p50["error"],
                "p50_real_spread_pct": p50["real_spread"],
                "p50_real_level": p50.get("real_level", np.nan),
                "p99_error_pct": p99["error"],
                "p99_real_spread_pct": p99["real_spread"],
            }
        )
    return pd.DataFrame(rows)


def completed_latencies_s(experiment: Path) -> dict[str, np.ndarray]:
    """Run name (`real-N`, `sim`) -> the latencies of its queries that were not dropped."""
    runs = sorted(d for d in experiment.iterdir() if d.name.startswith("real-"))
    out = {}
    for run in [*runs, experiment / "sim"]:
        queries = pd.read_parquet(_need(run / "queries.parquet"), columns=["latency_s", "outcome"])
        out[run.name] = completed_latency_s(queries)
    return out


def p50_error_pct(experiment: Path) -> float:
    table = pd.read_csv(_need(experiment / "fidelity.csv")).set_index("metric")
    return float(table.loc["p50_latency_s", "error"])


def plot_latency_cdfs(folder: Path, names: list[str], cols: int = 3) -> Figure:
    """One panel per experiment: each real run's latency CDF (grey) and the simulation's
    (red), x in ms on a log axis, the p50 error in the title."""
    rows = -(-len(names) // cols)
    fig, axes = new_figure(rows, cols, width_in=COLUMN_IN * cols * 0.8, height_in=ROW_IN * rows)
    for ax in axes.ravel()[len(names) :]:
        ax.set_visible(False)
    for ax, name in zip(axes.ravel(), names):
        for run, latency_s in completed_latencies_s(folder / name).items():
            x = np.sort(latency_s) * 1e3
            y = np.arange(1, x.size + 1) / x.size
            real = run != "sim"
            ax.step(
                x,
                y,
                where="post",
                color=REAL_COLOR if real else SIM_COLOR,
                lw=0.8 if real else 1.2,
                label=("real runs" if run == "real-1" else None) if real else "simulated",
            )
        ax.axhline(0.5, color="0.8", lw=0.5, zorder=0)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # decades only: no overlapping labels
        ax.set_title(f"{name}: p50 {p50_error_pct(folder / name):+.1f}%", fontsize=7)
        ax.set_xlabel("latency (ms)")
        ax.set_ylabel("CDF")
    axes[0, 0].legend(fontsize=6, loc="lower right")
    return fig


def speed_sets(folder: Path) -> list[Path]:
    """The diffusers experiments under `folder` and its sub-folders (one level: the sessions'
    sets) that carry `speed_bins.csv`, in path order."""
    found = [*folder.glob(f"*/{SPEED_FILE}"), *folder.glob(f"*/*/{SPEED_FILE}")]
    return sorted(p.parent for p in found)


def profile_after_idle_s(experiment: Path) -> dict[str, float]:
    """Model -> the batch-of-one p50 after idle of the tiny profile its set ran with
    (`<set>/tiny-profile/bundle/latency.csv`); empty where there is none."""
    path = experiment.parent / "tiny-profile" / "bundle" / "latency.csv"
    if not path.is_file():
        return {}
    table = pd.read_csv(path)
    ones = table[table["batch_size"] == 1]
    column = "latency_idle_p50_s" if "latency_idle_p50_s" in ones else "latency_p50_s"
    return dict(zip(ones["model"], ones[column]))


def plot_speed_bins(experiments: list[Path]) -> Figure:
    """One row per set, one panel per model: each real run's CPU p50 per 10-s bin (ms; a line
    per run) and the profile's p50 after idle (dashed)."""
    tables = [pd.read_csv(_need(e / SPEED_FILE)) for e in experiments]
    models = sorted({m for t in tables for m in t["model"]})
    fig, axes = new_figure(len(experiments), len(models), height_in=ROW_IN * 0.8 * len(experiments))
    for row, (experiment, table) in enumerate(zip(experiments, tables)):
        profile = profile_after_idle_s(experiment)
        label = f"{experiment.parent.name}/{experiment.name}"
        for col, model in enumerate(models):
            ax = axes[row, col]
            own = table[table["model"] == model]
            for run, bins in own.groupby("run", sort=True):
                ax.plot(
                    bins["bin_start_s"],
                    bins["cpu_p50_s"] * 1e3,
                    marker="o",
                    ms=2,
                    lw=0.8,
                    label=run,
                )
            if model in profile:
                ax.axhline(
                    profile[model] * 1e3, color="k", ls="--", lw=0.7, label="profile after idle"
                )
            ax.set_title(f"{label}: {model}", fontsize=6)
            ax.set_xlabel("run time (s)")
            ax.set_ylabel("CPU p50 (ms)")
    axes[0, 0].legend(fontsize=5)
    return fig


# a row judged on one of these columns is a named choice (a profile beside a stack, a served
# calibration, with or without its measured shapes; the profile's own shapes; the arrival
# charge; the other runs' service times and shapes) simulated beside the set's offline-profile
# row, not another set
NAMED_CHOICE_COLUMNS = (
    "error_compared",
    "error_compared_empirical",
    "error_empirical_service",
    "error_leave_one_out_arrival_charge",
    "error_leave_one_out_served_empirical",
)


def read_preregistered(folder: Path) -> pd.DataFrame:
    return pd.read_csv(_need(folder / PREREGISTERED), dtype={"set": str, "registered_utc": str})


def offline_profile_rows(ledger: pd.DataFrame) -> pd.Series:
    """Which ledger rows judge the offline profile (every row but the named choices')."""
    return ~ledger["judged_column"].isin(NAMED_CHOICE_COLUMNS)


def plot_preregistered(ledger: pd.DataFrame) -> Figure:
    """Each pre-registered experiment's p50 error (filled: the offline profile; hollow: the
    held-out served service times; x: a named choice, its protocol in the ledger)
    in ledger order, the goal's band shaded, one marker per machine."""
    fig, axes = new_figure(1, 1, width_in=COLUMN_IN * 2)
    ax = axes[0, 0]
    ax.axhspan(-TINY_P50_GOAL_PCT, TINY_P50_GOAL_PCT, color="0.92", zorder=0, label="goal")
    ax.axhline(0, color="0.6", lw=0.6)
    x = np.arange(len(ledger))
    offline = offline_profile_rows(ledger).to_numpy()
    for machine, marker in zip(ledger["machine"].unique(), "os^D"):
        own = (ledger["machine"] == machine).to_numpy()
        ax.plot(
            x[own & offline],
            ledger["p50_error_pct"][own & offline],
            marker,
            color=SIM_COLOR,
            ms=4,
            label=f"{machine}: offline profile",
        )
        ax.plot(
            x[own & offline],
            ledger["held_out_served_pct"][own & offline],
            marker,
            mfc="none",
            color="0.3",
            ms=4,
            label=f"{machine}: held-out served",
        )
    if (~offline).any():
        ax.plot(
            x[~offline],
            ledger["p50_error_pct"][~offline],
            "x",
            color="#2c7fb8",
            ms=4,
            label="a named choice of profile",
        )
    ax.set_xticks(
        x,
        [f"{r.session}/{r.set} {r.load_qps:g}qps" for r in ledger.itertuples()],
        rotation=60,
        ha="right",
        fontsize=5,
    )
    ax.set_ylabel("p50 error (%)")
    low = min(ledger["p50_error_pct"].min(), ledger["held_out_served_pct"].min())
    ax.set_ylim(min(low, -TINY_P50_GOAL_PCT) - 3, 2.8 * TINY_P50_GOAL_PCT)  # room for the legend
    ax.legend(fontsize=5, ncol=3, loc="upper center")
    return fig


def plot_overhead_runs(ledger: pd.DataFrame) -> Figure:
    """Each overhead run's p99 at the reference rate in ledger order (log scale), the goal
    dashed; filled: a run on 2 cores (the goal judges it), hollow: the hypervisor stole 5% or
    more of the CPU meanwhile."""
    fig, axes = new_figure(1, 1, width_in=COLUMN_IN * 2)
    ax = axes[0, 0]
    x = np.arange(len(ledger))
    p99_ms = ledger["overhead_p99_ms"].to_numpy(dtype=float)
    fair = on_two_cores(ledger).to_numpy()
    ax.axhline(GOAL_P99_MS, color="0.4", ls="--", lw=0.8, label=f"goal {GOAL_P99_MS:g} ms")
    ax.plot(
        x[fair],
        p99_ms[fair],
        "o",
        color=SIM_COLOR,
        ms=4,
        label="on 2 cores (stolen < 5% or not recorded)",
    )
    ax.plot(
        x[~fair],
        p99_ms[~fair],
        "o",
        mfc="none",
        color="0.3",
        ms=4,
        label="5% or more of the CPU stolen",
    )
    ax.set_yscale("log")
    ax.set_xticks(x, [f"{r.session}" for r in ledger.itertuples()], fontsize=5)
    ax.set_xlabel("session of the run")
    ax.set_ylabel(f"overhead p99 at {REFERENCE_QPS} QPS (ms)")
    ax.legend(fontsize=5, loc="upper right")
    return fig
