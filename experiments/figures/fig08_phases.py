"""HADIS Fig. 8: a piecewise-constant demand trace with four load levels P1-P4, rising, peak and
falling (P1 P2 P3 P4 P3 P2 P1), served by HADIS: FID, SLO violations, per-model throughput share,
workers per model and the share of queries that visit the heavy model, per second.

Levels are fractions of the cluster's capacity (`fig03_best_pair.capacity_qps`: 4, 8, 16 and
24 QPS on the default bundle with 16 workers); each is held `phase_s` seconds (300, quick 60).

Claims (rules of `verdicts`; one run, so the phases are the replicates): FID rises with demand
and recovers — the FID change of each step between consecutive phases, signed by the level's
change (+ when FID moves with demand), has a mean above the FID tie with its Student-t
interval over the steps above 0; violations stay low — the mean of the per-phase violation
ratios, with its interval over the phases, inside the paper's 1–5% ± 3 pp.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from experiments.figures import verdicts as v
from experiments.figures.context import Claim, FigureContext
from experiments.figures.fig03_best_pair import capacity_qps
from simulator.run import RunOutput

if TYPE_CHECKING:
    from matplotlib.figure import Figure

NAME = "fig08"
TITLE = "Piecewise-constant demand P1-P4: FID, violations, throughput share, workers, heavy ratio"
LEVEL_FRACTIONS = (0.1125, 0.225, 0.45, 0.675)  # P1-P4 (4/8/16/24 QPS on the default bundle)
PHASE_ORDER = (0, 1, 2, 3, 2, 1, 0)  # rising, peak, falling
PHASE_S = {False: 300, True: 60}
PAPER_VIOLATIONS = (0.01, 0.05)
WINDOW_S = 10  # plot smoothing of rates
PLAN_WINDOW_S = 30  # plot smoothing of workers and heavy ratio (plans change every 5 s)


def phase_trace(bundle, n_workers: int, quick: bool) -> tuple[str, list[float]]:
    """(trace spec, rate per phase) of the P1-P4 trace for this bundle."""
    capacity = capacity_qps(bundle, n_workers)
    rates = [round(LEVEL_FRACTIONS[k] * capacity, 1) for k in PHASE_ORDER]
    spec = f"phases:rates={'/'.join(f'{r:g}' for r in rates)},phase_s={PHASE_S[quick]}"
    return spec, rates


def per_second_share(out: RunOutput, mask: np.ndarray) -> np.ndarray:
    """Per arrival second: share of the completed queries for which `mask` holds (NaN when
    none completed)."""
    q = out.queries
    completed = (q["outcome"] != "drop").to_numpy()
    second = q["arrival_s"].to_numpy().astype(np.int64)
    n_s = len(out.timeseries)
    total = np.bincount(second[completed], minlength=n_s)[:n_s]
    hits = np.bincount(second[completed & mask], minlength=n_s)[:n_s]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, hits / np.maximum(total, 1), np.nan)


def timeseries_with_phases(out: RunOutput, phase_s: float, labels: list[str]) -> pd.DataFrame:
    """The run's per-second series plus phase, heavy ratio and violations."""
    ts = out.timeseries
    q = out.queries
    frame = pd.DataFrame({"second": ts["second"]})
    index = np.minimum(ts["second"].to_numpy() // phase_s, len(labels) - 1).astype(int)
    frame["phase_index"] = index
    frame["phase"] = np.array(labels)[index]
    keep = [
        "arrivals",
        "demand_estimate_qps",
        "realised_fid",
        "fid_method",
        "planned_fid",
        "slo_violation_ratio",
        "timeouts",
        "drops",
        "router_ratio",
        "disc_ratio",
        "plan",
    ]
    for column in keep:
        frame[column] = ts[column]
    frame["heavy_ratio"] = per_second_share(out, (q["bypassed"] | q["escalated"]).to_numpy())
    frame["bypass_ratio"] = per_second_share(out, q["bypassed"].to_numpy())
    for column in ts.columns:
        if column.startswith(("completions_", "workers_")):
            frame[column] = ts[column]
    return frame


def compute(ctx: FigureContext) -> pd.DataFrame:
    spec, rates = phase_trace(ctx.bundle, ctx.base.n_workers, ctx.quick)
    out = ctx.run("hadis", spec)
    labels = [f"P{k + 1}" for k in PHASE_ORDER]
    frame = timeseries_with_phases(out, PHASE_S[ctx.quick], labels)
    frame.insert(3, "level_qps", np.array(rates)[frame["phase_index"]])
    return frame


def phase_summary(data: pd.DataFrame) -> pd.DataFrame:
    """Per phase visit: level, mean realised FID, violation ratio, heavy ratio."""
    rows = []
    for index, g in data.groupby("phase_index"):
        arrivals = g["arrivals"].sum()
        rows.append(
            {
                "phase_index": index,
                "phase": g["phase"].iloc[0],
                "level_qps": g["level_qps"].iloc[0],
                "fid": float(g["realised_fid"].mean()),
                "slo_violation_ratio": float((g["timeouts"] + g["drops"]).sum() / max(arrivals, 1)),
                "heavy_ratio": float(g["heavy_ratio"].mean()),
            }
        )
    return pd.DataFrame(rows)


def claims(data: pd.DataFrame) -> list[Claim]:
    phases = phase_summary(data)
    level, fid = phases["level_qps"].to_numpy(), phases["fid"].to_numpy()
    steps = np.sign(np.diff(level))
    with_demand = v.t_interval((steps * np.diff(fid))[steps != 0])
    per_phase = v.t_interval(phases["slo_violation_ratio"].to_numpy())
    band = v.Band.proportion(*PAPER_VIOLATIONS)
    violations = float((data["timeouts"] + data["drops"]).sum() / max(data["arrivals"].sum(), 1))
    fid_text = ", ".join(f"{p} {f:.2f}" for p, f in zip(phases["phase"], phases["fid"]))
    estimator, error = v.fid_estimator_error(data["fid_method"])  # realised_fid's estimator
    return [
        Claim(
            NAME,
            "FID rises with demand and recovers as it falls",
            "FID up in P3/P4, back down in P2/P1",
            f"FID change with demand per step {with_demand.text(lambda x: f'{x:+.2f}')} "
            f"(FID {fid_text})",
            v.difference_verdict(with_demand, v.HIGHER, v.fid_tie(float(fid.mean())), error=error),
            f"mean realised FID per phase; per step: FID change × sign of the level change; "
            f"[ ]: 95% interval over {int((steps != 0).sum())} steps of one run; tie "
            f"{v.FID_TIE_REL:.1%} of the mean FID; {v.fid_error_note(estimator, error)}",
        ),
        Claim(
            NAME,
            "SLO violations stay low across phases",
            f"{100 * PAPER_VIOLATIONS[0]:g}-{100 * PAPER_VIOLATIONS[1]:g}%",
            f"mean over phases {per_phase.text(lambda x: f'{100 * x:.1f}%')}; {violations:.1%} "
            f"overall; per phase max {phases['slo_violation_ratio'].max():.1%}",
            v.level_verdict(per_phase, band),
            f"the interval over {len(phases)} phases of one run inside {band.text()}",
        ),
    ]


def shade_phases(ax, data: pd.DataFrame) -> None:
    """Alternate grey bands and labels for the phases."""
    for index, g in data.groupby("phase_index"):
        lo, hi = g["second"].min(), g["second"].max() + 1
        if index % 2:
            ax.axvspan(lo, hi, color="0.95", lw=0, zorder=0)


def plot(data: pd.DataFrame, ax=None) -> Figure:
    """Demand, FID, violations, completions per model and workers per model over the
    phases: 5 x 1 axes (the last gets a twin for the heavy ratio)."""
    from experiments.figures.style import COLUMN_IN, ROW_IN, figure_axes

    models = [c[len("completions_") :] for c in data.columns if c.startswith("completions_")]
    fig, axes = figure_axes(ax, 5, 1, width_in=COLUMN_IN * 2, height_in=ROW_IN * 3.6, sharex=True)
    t = data["second"]
    ax = axes[0, 0]
    ax.plot(
        t,
        data["arrivals"].rolling(WINDOW_S, min_periods=1).mean(),
        color="0.5",
        label=f"arrivals ({WINDOW_S} s mean)",
    )
    ax.step(t, data["level_qps"], where="post", color="k", label="demand level")
    for _, g in data.groupby("phase_index"):
        ax.text(
            g["second"].mean(),
            g["level_qps"].iloc[0],
            g["phase"].iloc[0],
            ha="center",
            va="bottom",
            fontsize=7,
        )
    ax.set(ylabel="QPS")
    ax.legend(loc="upper right")
    realised = f"realised ({data['fid_method'].iloc[0]})"
    axes[1, 0].plot(t, data["realised_fid"], color="tab:red", label=realised)
    axes[1, 0].plot(t, data["planned_fid"], color="tab:red", ls="--", lw=0.8, label="planned")
    axes[1, 0].set(ylabel="FID")
    axes[1, 0].legend(loc="upper right")
    violations = (data["timeouts"] + data["drops"]).rolling(WINDOW_S, min_periods=1).sum()
    arrivals = data["arrivals"].rolling(WINDOW_S, min_periods=1).sum().clip(lower=1)
    axes[2, 0].plot(t, violations / arrivals, color="tab:red")
    axes[2, 0].set(ylabel=f"SLO violations\n({WINDOW_S} s window)", ylim=(-0.01, None))
    done = data[[f"completions_{m}" for m in models]].rolling(WINDOW_S, min_periods=1).mean()
    axes[3, 0].stackplot(t, done.to_numpy().T, labels=models, alpha=0.85)
    axes[3, 0].set(ylabel="completions / s\nper model")
    axes[3, 0].legend(loc="upper left", fontsize=6)
    ax = axes[4, 0]
    for i, m in enumerate(models):
        workers = data[f"workers_{m}"].rolling(PLAN_WINDOW_S, min_periods=1).mean()
        ax.plot(t, workers, color=f"C{i}", label=m)
    ax.set(ylabel=f"workers\n({PLAN_WINDOW_S} s mean)", xlabel="time (s)")
    twin = ax.twinx()
    heavy = data["heavy_ratio"].rolling(PLAN_WINDOW_S, min_periods=1).mean()
    twin.plot(t, heavy, color="k", ls=":", label="heavy ratio")
    twin.set(ylabel="heavy ratio", ylim=(0, 1))
    twin.grid(False)
    twin.legend(loc="upper right")
    for row in axes[:, 0]:
        shade_phases(row, data)
    return fig
