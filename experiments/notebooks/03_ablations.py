# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Ablations: HADIS Figs. 9, 10, 12, learned routers and swap cost
#
# Which part of HADIS matters: hybrid routing vs its halves (Fig. 9), the MILP vs cached
# planners (Fig. 10), the response to a shift in query hardness (Fig. 12), HADIS with
# its rule-based router replaced by learned routers (fig13), and planning for the time a
# worker spends loading a new model (fig16).
#
# Figures are read from `$T2ISIM_RESULTS` (default: the repository's `results/`), as
# written by
#
# ```
# t2isim figures [--quick] --only fig09,fig10,fig12,fig13,fig16 --out results/
# ```
#
# Each figure is drawn by its module's `plot(data, ax=None)` from its CSV alone (the figure's
# tidy data; pass `ax` to draw it into your own axes), followed by summaries and the paper's
# claims next to ours (the verdicts of `REPRODUCTION.md`). This notebook is generated from
# `03_ablations.py` (jupytext percent format; shared code in `helpers.py`): edit that file and run
# `python experiments/notebooks/build_notebooks.py`.

# %%
import pandas as pd

from experiments.figures import fig07_azure, fig12_hardness, seeds
from experiments.notebooks.helpers import claims, open_results

FIGURES = ["fig09", "fig10", "fig12", "fig13", "fig16"]
results = open_results(FIGURES)

# %% [markdown]
# ## fig09: hybrid-routing ablation (HADIS Fig. 9)
#
# Random (random hardness and quality scores), Router-only (no discriminator re-routing),
# Disc-only (no router bypass) and HADIS (hybrid) on the Azure-shaped trace with the same
# MILP allocator: average FID, SLO violations and the share of queries on the heavy model.
#
# **Paper's claim:** HADIS has the lowest FID and violations of all variants; Random and
# Router-only lose FID (hard queries misrouted to the light model), Disc-only pays
# violations (every query runs the light model first).

# %% tags=["figure"] t2isim_figure="fig09"
fig09 = results.show("fig09")

# %%
# per variant: means over seeds with 95% CI half-widths
fig07_azure.averages(fig09).drop(columns=["kind", "seed"])

# %%
# paired per-seed differences to HADIS: (mean, 95% CI half-width)
seeds09 = fig07_azure.seed_data(fig09)
pd.DataFrame(
    {
        metric: {
            other: seeds.paired_difference(seeds09, metric, other, "hadis")
            for other in ("random", "router-only", "disc-only")
        }
        for metric in ("fid", "slo_violation_ratio")
    }
)

# %%
claims("fig09", fig09)

# %% [markdown]
# ## fig10: online MILP vs cached planners (HADIS Fig. 10)
#
# HADIS's online MILP against Cache-D (plans cached by demand range) and Cache-D+Q (demand
# and queue-length ranges) on the Azure-shaped trace: timeseries and averages, as Fig. 7.
#
# **Paper's claim:** the cached planners lag behind load shifts (a startup spike in
# violations, transient FID drops); HADIS has fewer violations with comparable or better
# FID, and Cache-D+Q improves on Cache-D in both.

# %% tags=["figure"] t2isim_figure="fig10"
fig10 = results.show("fig10")

# %%
fig07_azure.averages(fig10)[
    ["n_seeds", "fid", "fid_ci95", "slo_violation_ratio", "slo_violation_ratio_ci95"]
]

# %%
# the startup transient: the first tenth of the trace vs the rest
ts10 = fig10[fig10["kind"] == "timeseries"]
start10 = ts10["second"] < 0.1 * ts10["second"].max()
ts10.assign(period=start10.map({True: "first 10%", False: "rest"})).pivot_table(
    index="method", columns="period", values=["fid", "slo_violation_ratio"]
)

# %%
claims("fig10", fig10)

# %% [markdown]
# ## fig12: hardness sensitivity at fixed demand (HADIS Fig. 12)
#
# Fixed demand, four phases alternating easy-only and hard-only prompts (bottom / top 30% by
# router score), served by HADIS: the router's bypass share, the heavy-class intake (queries
# that visit the heavy model), the planned thresholds and the workers.
#
# **Paper's claim:** at each hard phase the router bypasses more queries, the heavy-class
# intake jumps and workers move to the heavy model.

# %% tags=["figure"] t2isim_figure="fig12"
fig12 = results.show("fig12")

# %%
# phase means of bypass share, heavy intake and workers on the plan's heavy model
fig12_hardness.phase_means(fig12)

# %%
# share of the seconds each plan was in force, per phase
fig12.groupby("phase_index")["plan"].value_counts(normalize=True).unstack(fill_value=0)

# %%
claims("fig12", fig12)

# %% [markdown]
# ## fig13: HADIS with learned routers (router ablation on the Azure trace)
#
# HADIS with its hardness score replaced by a trained router of `routers/` (`bundle`: the
# bundle's own rule-based router score), all else equal: same trace, allocator,
# discriminator and seed; every router on several seeds. Left: mean FID per router; right:
# SLO violations (95% CIs).
#
# **Claim (RouteT2I / ECVL-Router, no HADIS number):** a learned router gives a lower FID
# than the rule-based router, and than random scores, at no more violations; `oracle`
# bounds what routing can give.

# %% tags=["figure"] t2isim_figure="fig13"
fig13 = results.show("fig13")

# %%
# per router: means over seeds, relative to the bundle's rule router
average13 = fig13[fig13["kind"] == "average"].set_index("router")
average13.assign(
    fid_vs_rule=average13["fid"] - average13.at["bundle", "fid"],
    violations_vs_rule=average13["slo_violation_ratio"]
    - average13.at["bundle", "slo_violation_ratio"],
).sort_values("fid")[["n_seeds", "fid", "fid_ci95", "fid_vs_rule", "violations_vs_rule"]]

# %%
# FID per seed and router: the paired comparisons behind the claims
fig13[fig13["kind"] == "seed"].pivot(index="seed", columns="router", values="fid")

# %%
claims("fig13", fig13)

# %% [markdown]
# ## fig16: swap cost (not a paper figure)
#
# SLO violations and FID on the Azure-shaped trace as the model load time grows (quick mode:
# the bundle's own per-model load times only), for Proteus, HADIS planning without swap cost
# (`swap_aware=false`, as the HADIS artifact) and HADIS's default swap-aware planner. The
# papers simulate free swaps, so nothing here is compared with them.

# %% tags=["figure"] t2isim_figure="fig16"
fig16 = results.show("fig16")

# %%
# violations and FID per method (rows) and load time (columns): means over seeds
fig16.pivot(index="method", columns="load", values=["slo_violation_ratio", "fid"])

# %%
claims("fig16", fig16)
