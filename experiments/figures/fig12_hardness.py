"""HADIS Fig. 12 (§5.7): sensitivity to query hardness at fixed demand.

Four phases of `phase_s` seconds (300, quick 60) at a fixed Poisson demand of 15% of the
cluster's capacity (5.3 QPS on the default bundle): phases 1 and 3 draw only easy prompts,
2 and 4 only hard ones (`alternating:...,pools=easy/hard`; easy / hard = the bottom / top 30%
by router score, `experiments.inputs.prompt_pools`), served by HADIS. Per second: the router's
bypass share, the heavy-class intake (share of queries that visit the heavy model: bypassed or
escalated), the plan's thresholds, workers per model and on the plan's heavy model.

Claim: heavy-class intake and heavy workers rise in hard phases — every hard phase's mean
exceeds that of each adjacent easy phase. Its verdict is "by construction" (`verdicts`): the
pools are cut by the same router score that HADIS's bypass threshold reads, so a hard phase
bypasses more queries to the heavy model whatever the policy plans.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from experiments.figures import verdicts as v
from experiments.figures.context import Claim, FigureContext
from experiments.figures.fig03_best_pair import capacity_qps
from experiments.figures.fig08_phases import per_second_share, shade_phases

if TYPE_CHECKING:
    from matplotlib.figure import Figure

NAME = "fig12"
TITLE = "Hardness sensitivity: easy/hard phases at fixed demand"
LOAD_FRACTION = 0.15
PHASE_S = {False: 300, True: 60}
POOLS = ("easy", "hard")
N_PHASES = 4
PLAN_WINDOW_S = 30


def hardness_trace(bundle, n_workers: int, quick: bool) -> str:
    rate = round(LOAD_FRACTION * capacity_qps(bundle, n_workers), 1)
    return (
        f"alternating:rate={rate:g},phase_s={PHASE_S[quick]},pools={'/'.join(POOLS)},"
        f"n_phases={N_PHASES}"
    )


def compute(ctx: FigureContext) -> pd.DataFrame:
    spec = hardness_trace(ctx.bundle, ctx.base.n_workers, ctx.quick)
    out = ctx.run("hadis", spec)
    ts, q = out.timeseries, out.queries
    heavy_of = {r.plan.label: r.plan.heavy for r in out.raw.plans}
    heavy_model = ts["plan"].map(heavy_of)
    workers = {c[len("workers_") :]: ts[c] for c in ts.columns if c.startswith("workers_")}
    frame = pd.DataFrame({"second": ts["second"]})
    index = np.minimum(ts["second"].to_numpy() // PHASE_S[ctx.quick], N_PHASES - 1).astype(int)
    frame["phase_index"] = index
    frame["phase"] = [POOLS[k % len(POOLS)] for k in index]
    for column in (
        "arrivals",
        "timeouts",
        "drops",
        "realised_fid",
        "router_ratio",
        "disc_ratio",
        "plan",
    ):
        frame[column] = ts[column]
    frame["bypass_ratio"] = per_second_share(out, q["bypassed"].to_numpy())
    frame["heavy_intake"] = per_second_share(out, (q["bypassed"] | q["escalated"]).to_numpy())
    frame["heavy_model"] = heavy_model
    frame["heavy_workers"] = [
        workers[m].iloc[i] if isinstance(m, str) else 0 for i, m in enumerate(heavy_model)
    ]
    for model, column in workers.items():
        frame[f"workers_{model}"] = column
    return frame


def phase_means(data: pd.DataFrame) -> pd.DataFrame:
    return data.groupby("phase_index").agg(
        phase=("phase", "first"),
        bypass_ratio=("bypass_ratio", "mean"),
        heavy_intake=("heavy_intake", "mean"),
        heavy_workers=("heavy_workers", "mean"),
    )


def claims(data: pd.DataFrame) -> list[Claim]:
    means = phase_means(data)
    checks = {}
    for column in ("heavy_intake", "heavy_workers"):
        ok = []
        for k in means.index[means["phase"] == "hard"]:
            for j in (k - 1, k + 1):
                if j in means.index and means.loc[j, "phase"] == "easy":
                    ok.append(means.loc[k, column] > means.loc[j, column])
        checks[column] = (sum(ok), len(ok))
    text = "; ".join(
        f"{c}: " + "/".join(f"{v:.2f}" for v in means[c]) for c in ("heavy_intake", "heavy_workers")
    )
    return [
        Claim(
            NAME,
            "heavy-class intake and heavy workers rise in hard phases",
            "bypass and heavy intake jump at each hard phase; heavy workers follow",
            f"per phase ({'/'.join(means['phase'])}) {text}; hard > each adjacent easy phase: "
            + ", ".join(f"{c} {a}/{n}" for c, (a, n) in checks.items()),
            v.BY_CONSTRUCTION,
            "the easy/hard pools are the bottom/top 30% by the router score that HADIS's bypass "
            "threshold reads: hard phases bypass more queries to the heavy model by the pools' "
            "definition, not by the planner's adaptation",
        )
    ]


def plot(data: pd.DataFrame, ax=None) -> Figure:
    """Bypass share and heavy intake, planned ratios, and workers over the phases: 3 x 1 axes."""
    from experiments.figures.style import COLUMN_IN, ROW_IN, figure_axes

    models = [c[len("workers_") :] for c in data.columns if c.startswith("workers_")]
    fig, axes = figure_axes(ax, 3, 1, width_in=COLUMN_IN * 2, height_in=ROW_IN * 2.4, sharex=True)
    t = data["second"]
    smooth = {
        c: data[c].rolling(PLAN_WINDOW_S, min_periods=1).mean()
        for c in (
            "bypass_ratio",
            "heavy_intake",
            "heavy_workers",
            *[f"workers_{m}" for m in models],
        )
    }
    ax = axes[0, 0]
    ax.plot(t, smooth["bypass_ratio"], color="tab:purple", label="router bypass share")
    ax.plot(t, smooth["heavy_intake"], color="k", label="heavy-class intake")
    ax.set(ylabel=f"share of queries\n({PLAN_WINDOW_S} s mean)", ylim=(0, 1.05))
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    for _, g in data.groupby("phase_index"):
        ax.text(g["second"].mean(), 1.0, g["phase"].iloc[0], ha="center", va="top", fontsize=7)
    ax = axes[1, 0]
    ax.step(t, data["router_ratio"], where="post", color="tab:purple", label="router ratio")
    ax.step(t, data["disc_ratio"], where="post", color="tab:orange", label="disc ratio")
    ax.set(ylabel="planned ratio", ylim=(0, 1.05))
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax = axes[2, 0]
    for i, m in enumerate(models):
        ax.plot(t, smooth[f"workers_{m}"], color=f"C{i}", label=m)
    ax.plot(t, smooth["heavy_workers"], color="k", ls="--", label="plan's heavy model")
    ax.set(ylabel=f"workers\n({PLAN_WINDOW_S} s mean)", xlabel="time (s)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    for row in axes[:, 0]:
        shade_phases(row, data)
    return fig
