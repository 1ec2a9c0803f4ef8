# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Models and cascades: HADIS Figs. 2-5 and the FID estimators
#
# Why HADIS uses two-model cascades (Fig. 2), why the pair must adapt to the load
# (Fig. 3), when the hybrid router + discriminator beats either alone (§3,
# Figs. 4-5), whether Fig. 2's table-based three-model frontier holds when the cascades are
# simulated (fig02b), and how far the FID estimators behind every comparison are from
# measured FIDs (tab03).
#
# Figures are read from `$T2ISIM_RESULTS` (default: the repository's `results/`), as
# written by
#
# ```
# t2isim figures [--quick] --only fig02,fig02b,fig03,fig04,tab03 --out results/
# ```
#
# Each figure is drawn by its module's `plot(data, ax=None)` from its CSV alone (the figure's
# tidy data; pass `ax` to draw it into your own axes), followed by summaries and the paper's
# claims next to ours (the verdicts of `REPRODUCTION.md`). This notebook is generated from
# `01_models_and_cascades.py` (jupytext percent format; shared code in `helpers.py`): edit
# that file and run `python experiments/notebooks/build_notebooks.py`.

# %%
import pandas as pd
from IPython.display import display

from experiments.figures import (
    fig02_frontier,
    fig02b_three_stage,
    fig03_best_pair,
    fig04_feasibility,
)
from experiments.notebooks.helpers import claims, open_results

FIGURES = ["fig02", "fig03", "fig04", "fig02b", "tab03"]
results = open_results(FIGURES)

# %% [markdown]
# ## fig02: single models and cascade frontiers (HADIS Fig. 2)
#
# Left: batch-1 latency vs FID of each model alone. Right: every cascade configuration
# (grey) with the Pareto frontiers of two-model (red) and three-model (blue) cascades; the
# orange dashed lines mark where the two-model frontier changes pair.
#
# **Paper's claim:** the two- and three-model frontiers coincide over the relevant latency
# range (a third stage buys no significantly better FID), and the two-model frontier has one
# pair per latency regime: Lightning→Turbo, Turbo→Medium, Medium→Large.

# %% tags=["figure"] t2isim_figure="fig02"
fig02 = results.show("fig02")

# %%
fig02[fig02["kind"] == "model"][["cascade", "latency_s", "fid"]]

# %%
# frontier per cascade kind: size, latency range, best FID
fig02[fig02["frontier"]].groupby("kind").agg(
    points=("fid", "size"),
    latency_min_s=("latency_s", "min"),
    latency_max_s=("latency_s", "max"),
    best_fid=("fid", "min"),
)

# %%
print("two-model frontier regimes:", fig02_frontier.frontier_regimes(fig02))
if (fig02["kind"] == "three-model").any():
    # relative FID gain of three- over two-model cascades over the latency budgets
    gain02 = fig02_frontier.frontier_gain(fig02)["gain"]
    display(gain02.describe().to_frame().T)

# %%
claims("fig02", fig02)

# %% [markdown]
# ## fig03: best pair per load and tolerated violations (HADIS Fig. 3)
#
# Each two-model pair serves a Poisson load with DiffServe's allocator. Left and middle: FID
# vs SLO-violation ratio per pair at low and high load (red circle: the best pair within 5%
# violations). Right: the best pair per load (fraction of the cluster's capacity) and
# tolerance; the top row is the pair the HADIS MILP plans.
#
# **Paper's claim:** no fixed cascade is best everywhere: the best pair changes with the load
# and with the tolerated violation ratio.

# %% tags=["figure"] t2isim_figure="fig03"
fig03 = results.show("fig03")

# %%
# best simulated pair per tolerated violation ratio (rows) and load (columns)
best03 = fig03_best_pair.best_pairs(fig03)
best03.pivot(index="tolerance", columns="load_fraction", values="pair")

# %%
# FID and SLO-violation ratio of each pair per load
fig03[fig03["kind"] == "simulated"].pivot_table(
    index="pair", columns="load_fraction", values=["fid", "slo_violation_ratio"]
)

# %%
# the pair and thresholds the HADIS MILP plans per load
milp03 = fig03[fig03["kind"] == "milp"]
milp03[["load_fraction", "demand_qps", "pair", "router_ratio", "disc_ratio", "fid"]]

# %%
claims("fig03", fig03)

# %% [markdown]
# ## fig04: §3 feasibility regions and the simulator check (HADIS Figs. 4-5)
#
# Left: the discriminator operating points (FPR, TPR) for which the hybrid (HY) beats
# router-only (RO) at equal cost (eq. 1); middle: the router points for which HY beats
# discriminator-only (DO) (eq. 2); both for q = 0.5 and α ∈ {0.1, 0.2}, with the bundle's
# ROC curves. Right: the §3 formulas' quality and cost of RO, HY and DO against the
# simulator's measurements at equal cost.
#
# **Paper's claim:** the HY-vs-RO region shrinks and the HY-vs-DO region grows as α rises;
# there are settings where HY beats both at equal cost.

# %% tags=["figure"] t2isim_figure="fig04"
fig04 = results.show("fig04")

# %%
# feasibility-region area (share of the ROC square) per comparison and α
regions04 = fig04[fig04["kind"] == "region"]
regions04.groupby(["curve", "alpha"])["area"].first().unstack()

# %%
roc04 = fig04[fig04["kind"] == "roc"]
pd.Series(
    {
        curve: fig04_feasibility.roc_auc(rows["tp"].to_numpy(), rows["fp"].to_numpy())
        for curve, rows in roc04.groupby("curve")
    },
    name="ROC AUC",
)

# %%
# formulas vs simulator per operating point (empty without ground-truth hardness)
check04 = fig04[fig04["kind"] == "check"]
check04[
    [
        "operating_point",
        "curve",
        "router_ratio",
        "disc_ratio",
        "quality_formula",
        "quality_sim",
        "cost_formula",
        "cost_sim",
        "fid_sim",
    ]
]

# %%
claims("fig04", fig04)

# %% [markdown]
# ## fig02b: Fig. 2's three-model cascades simulated (not a paper figure)
#
# Configurations of fig02's three-model frontier whose third stage is reached through the
# second, run as static three-stage cascades (`static-cascade`, `models=A,B,C`) at 30% of
# the busiest stage's batch-1 capacity, on the figures' replicates. Left: the table's
# frontier (expected batch-1 latency, FID) next to the simulated one (mean latency, FID; p99
# as crosses). Middle: FID difference simulated − table with its 95% interval over
# replicates, against the FID estimator's out-of-sample error (grey band). Right: the same
# for the share of queries that run on each stage.
#
# **By construction:** the simulator routes with the same scores through the same rules and
# scores FID with the same generative model as the table, so shares and FID can differ only
# through the trace's prompt sample and dropped queries; what the simulator adds is the
# latency (queues, batching, router and discriminator costs).

# %% tags=["figure"] t2isim_figure="fig02b"
fig02b = results.show("fig02b")

# %%
# table vs simulated per configuration: stage shares, FID, latency
fig02b[
    [
        "config",
        "router_ratio",
        "disc_ratio",
        "disc_ratio_2",
        *(f"{s}_{part}" for s in fig02b_three_stage.STAGES for part in ("table", "sim")),
        "fid_table",
        "fid_sim",
        "fid_diff",
        "fid_diff_ci95",
        "latency_s_table",
        "latency_s_sim",
        "p99_latency_s_sim",
        "fid_agreement",
    ]
]

# %%
agreement02b, why02b = (
    fig02b_three_stage.frontier_agreement(fig02b) if len(fig02b) else ("not comparable", "")
)
print(f"table-based vs simulated three-model frontier: {agreement02b} ({why02b})")

# %% [markdown]
# ## tab03: the FID estimators' out-of-sample error (not a paper figure)
#
# How far the exact (generative-model) and table FID estimators are from FIDs measured on
# real images: mean and max absolute error and bias per estimator and held-out set, from the
# HADIS artifact's measurements (committed) and from a k-fold over this bundle's own cascade
# table. The verdicts call a FID comparison "within estimator error" by these numbers; blue
# bars are the estimator this bundle's runs report.

# %% tags=["figure"] t2isim_figure="tab03"
tab03 = results.show("tab03")

# %%
tab03.set_index(["source", "estimator", "set"])
