"""Routers inside HADIS (issue 6 §4): FID and SLO violations by router on the Azure trace.

`hadis` with its hardness score replaced by a trained router of `routers/`
(`--option router=NAME`, policies/learned_router.py), all else equal: same trace, allocator,
discriminator and seed. `bundle` is the bundle's own router score (the HADIS rule router).
FID is the run's `fid` (exact on the default bundle, where the generative model scores any
routing; the table estimate on other bundles, which assumes the bundle's own router).

Routers are trained on the bundle's prompts with `bow+hadis8` features (fast, no model
download); quick mode uses fewer routers and a shorter trace.

Claim (RouteT2I / ECVL: learned routers beat rule-based routing): a learned router gives a
lower FID than the bundle's rule router at no more violations.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from experiments.figures.context import Claim, FigureContext
from experiments.figures.style import new_figure, save

NAME = "fig13"
TITLE = "HADIS with learned routers: FID and SLO violations by router (Azure trace)"
ROUTERS = {
    False: (
        "bundle",
        "random",
        "oracle",
        "hadis-published",
        "knn",
        "mlp",
        "hybrid-trans",
        "routet2i",
        "ecvl-quality",
    ),
    True: ("bundle", "random", "oracle", "knn"),
}
TRACE = {False: "azure:peak=24,min=1", True: "azure:peak=24,min=1,seconds_per_hour=0.3"}
LEARNED_TOLERANCE_FID = 0.05  # a learned router "beats" the rule router by more than this
FEATURES = "bow+hadis8"


def compute(ctx: FigureContext) -> pd.DataFrame:
    rows = []
    for router in ROUTERS[ctx.quick]:
        options = {} if router == "bundle" else {"router": router, "router_features": FEATURES}
        summary = ctx.run("hadis", TRACE[ctx.quick], options).summary
        rows.append(
            {
                "router": router,
                "fid": summary["fid"],
                "fid_method": summary["fid_method"],
                "slo_violation_ratio": summary["slo_violation_ratio"],
                "heavy_share": summary["heavy_share"],
                "router_bypass_share": summary["router_bypass_share"],
                "arrivals": summary["arrivals"],
            }
        )
    return pd.DataFrame(rows)


def plot(data: pd.DataFrame, path: Path) -> None:
    fig, axes = new_figure(1, 2)
    order = data.sort_values("fid")
    labels = order["router"].replace({"bundle": "HADIS rule (bundle)"})
    colors = ["#d62728" if r == "bundle" else "#4c72b0" for r in order["router"]]
    axes[0, 0].barh(labels, order["fid"], color=colors)
    low, high = order["fid"].min(), order["fid"].max()
    axes[0, 0].set_xlim(low - 0.5, high + 0.3)
    axes[0, 0].set_xlabel(f"FID ({order['fid_method'].iloc[0]}, lower is better)")
    axes[0, 0].invert_yaxis()
    axes[0, 1].barh(labels, 100 * order["slo_violation_ratio"], color=colors)
    axes[0, 1].set_xlabel("SLO violations (%)")
    axes[0, 1].set_yticklabels([])
    axes[0, 1].invert_yaxis()
    save(fig, path)


def claims(data: pd.DataFrame) -> list[Claim]:
    rule = data[data.router == "bundle"].iloc[0]
    learned = data[~data.router.isin(["bundle", "random", "oracle"])]
    if learned.empty:
        return []
    best = learned.sort_values("fid").iloc[0]
    better = best.fid < rule.fid - LEARNED_TOLERANCE_FID
    no_worse = best.slo_violation_ratio <= rule.slo_violation_ratio + 0.01
    verdict = "reproduced" if better and no_worse else "not reproduced"
    oracle = data[data.router == "oracle"]
    note = f"oracle FID {oracle.fid.iloc[0]:.2f}" if len(oracle) else ""
    return [
        Claim(
            NAME,
            "a learned router beats the rule-based router inside the hybrid cascade",
            "RouteT2I / ECVL: learned routers beat rule routing (no HADIS number)",
            f"best learned {best.router} FID {best.fid:.2f} vs rule {rule.fid:.2f}; "
            f"violations {best.slo_violation_ratio:.1%} vs {rule.slo_violation_ratio:.1%}",
            verdict,
            note,
        )
    ]
