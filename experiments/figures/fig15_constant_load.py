"""Constant load under the HADIS artifact's testbed (not a paper figure): constant 1-32 QPS for
200 s each (60 s in quick mode), every setting and the controller from the `artifact-testbed`
preset (`simulator/presets.py`: 16 workers, 10x time compression, 6 s SLO, planner=faithful
with its own demand signal). Per load: the share of time each cascade pair is in force (the
controller's fallback counted apart), SLO violations and FID.

These are the loads of the artifact's own constant-load runs (`logs_analysis/logs_<N>qps/` of
github Tung-I/diffserve-2, not redistributed here), so the load at which each pair takes over
can be set beside the artifact's. Data: one row per load and plan (``plan`` = ``LIGHT->HEAVY``
or ``fallback``) with its time share, and the load's violation ratio, FID (the run's
``fid``), planned FID and arrivals repeated on each row of that load.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from experiments.figures import verdicts as v
from experiments.figures.context import Claim, FigureContext
from simulator.presets import get_preset

if TYPE_CHECKING:
    from matplotlib.figure import Figure

NAME = "fig15"
TITLE = "Constant load 1-32 QPS under the artifact's testbed: cascade share, violations, FID"
PRESET = "artifact-testbed"
LOADS_QPS = (1, 2, 4, 8, 12, 16, 18, 19, 20, 24, 28, 32)
DURATION_S = {False: 200, True: 60}
FALLBACK = "fallback"
COLUMNS = [
    "load_qps",
    "plan",
    "share",
    "arrivals",
    "slo_violation_ratio",
    "fid",
    "fid_planned",
    "fid_method",
]


def compute(ctx: FigureContext) -> pd.DataFrame:
    fields, policy, options = get_preset(PRESET).apply({}, "hadis", {}, set())
    duration = DURATION_S[ctx.quick]
    frames = []
    for load in LOADS_QPS:
        out = ctx.run(policy, f"constant:rate={load},duration={duration}", options, **fields)
        ts = out.timeseries[out.timeseries["second"] < duration]
        plans = np.where(ts["infeasible"].astype(bool), FALLBACK, ts["plan"].astype(str))
        labels, seconds = np.unique(plans, return_counts=True)
        s = out.summary
        frames.append(
            pd.DataFrame(
                {
                    "load_qps": load,
                    "plan": labels,
                    "share": seconds / seconds.sum(),
                    "arrivals": s["arrivals"],
                    "slo_violation_ratio": s["slo_violation_ratio"],
                    "fid": s["fid"],
                    "fid_planned": s["fid_planned"],
                    "fid_method": s["fid_method"],
                }
            )
        )
    return pd.concat(frames, ignore_index=True)[COLUMNS]


def dominant_plans(data: pd.DataFrame) -> list[tuple[float, float, str]]:
    """(first load, last load, plan) for each run of consecutive loads with the same plan
    holding the largest time share: where each pair takes over and where it gives way."""
    dominant = data.loc[data.groupby("load_qps")["share"].idxmax(), ["load_qps", "plan"]]
    runs: list[tuple[float, float, str]] = []
    for load, plan in dominant.sort_values("load_qps").itertuples(index=False):
        if runs and runs[-1][2] == plan:
            runs[-1] = (runs[-1][0], float(load), plan)
        else:
            runs.append((float(load), float(load), plan))
    return runs


def dominant_text(data: pd.DataFrame) -> str:
    return "; ".join(
        f"{lo:g}{'' if lo == hi else f'-{hi:g}'} QPS: {plan}"
        for lo, hi, plan in dominant_plans(data)
    )


def per_load(data: pd.DataFrame) -> pd.DataFrame:
    keys = ["arrivals", "slo_violation_ratio", "fid", "fid_planned"]
    return data.groupby("load_qps", sort=True)[keys].first().reset_index()


def claims(data: pd.DataFrame) -> list[Claim]:
    loads = per_load(data)
    lo, hi = loads.iloc[0], loads.iloc[-1]
    rise = v.Estimate.exact(float(hi["fid"] - lo["fid"]))
    estimator, error = v.fid_estimator_error(data["fid_method"])
    takeover = dominant_text(data)
    return [
        Claim(
            NAME,
            "the controller moves to lighter cascades (higher FID) as constant load rises",
            "FID rises with demand (HADIS §5.3, Fig. 8)",
            f"FID {lo['fid']:.2f} at {lo['load_qps']:g} QPS, {hi['fid']:.2f} at "
            f"{hi['load_qps']:g} QPS; plan in force longest: {takeover}",
            v.difference_verdict(rise, v.HIGHER, v.fid_tie(float(lo["fid"])), error=error),
            f"FID at the highest load minus at the lowest, one run per load (deterministic); "
            f"tie {v.FID_TIE_REL:.1%} of the FID at the lowest load; "
            f"{v.fid_error_note(estimator, error)}",
        ),
        Claim(
            NAME,
            "loads at which each cascade pair is in force longest on the artifact's testbed",
            "not stated by the paper; the artifact's constant-load logs show it",
            takeover,
            v.NOT_COMPARABLE,
            "compare with logs_analysis/logs_<N>qps/cascade_config_per_second.csv of the "
            "artifact (not redistributed); docs/FAITHFUL.md lists what still differs",
        ),
    ]


def plot(data: pd.DataFrame, ax=None) -> Figure:
    """Share of time per pair, SLO violations and FID per constant load: 3 x 1 axes."""
    from experiments.figures.style import COLUMN_IN, ROW_IN, figure_axes

    fig, axes = figure_axes(ax, 3, 1, width_in=COLUMN_IN * 2, height_in=ROW_IN * 2.6, sharex=True)
    shares = data.pivot_table(index="load_qps", columns="plan", values="share", fill_value=0.0)
    x = np.arange(len(shares))
    bottom = np.zeros(len(shares))
    for i, plan in enumerate(shares.columns):
        color = "0.6" if plan == FALLBACK else f"C{i}"
        axes[0, 0].bar(x, shares[plan], bottom=bottom, color=color, label=plan, width=0.8)
        bottom += shares[plan].to_numpy()
    axes[0, 0].set(ylabel="share of time", ylim=(0, 1))
    axes[0, 0].legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), fontsize=6, ncol=2)
    loads = per_load(data)
    axes[1, 0].plot(x, 100 * loads["slo_violation_ratio"], marker="o", color="tab:red")
    axes[1, 0].set(ylabel="SLO violations (%)")
    axes[2, 0].plot(x, loads["fid"], marker="o", color="k", label="FID")
    axes[2, 0].plot(x, loads["fid_planned"], marker=".", ls="--", color="0.4", label="planned")
    axes[2, 0].set(ylabel="FID", xlabel="constant load (QPS)")
    axes[2, 0].legend(loc="upper left")
    axes[2, 0].set_xticks(x, [f"{q:g}" for q in shares.index])
    return fig
