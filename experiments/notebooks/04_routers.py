# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Router evaluation (RouteT2I, ECVL-Router, RouteLLM-style, HADIS rule)
#
# Reads the output of
#
# ```
# t2isim routers evaluate --data FILE.csv|hadis-artifact --out DIR
# ```
#
# from `$T2ISIM_ROUTERS` (`routers.csv`: summary metrics per router; `curves.csv`: routed
# quality and ΔP at heavy shares 0.1–0.9). When the variable is unset, the notebook
# evaluates a few routers on a small seeded synthetic CSV it writes itself (prompts with a
# 'hard' word lose quality on the edge model), so it always runs. This notebook is generated
# from `04_routers.py` (jupytext percent format; shared code in `helpers.py`): edit that file
# and run `python experiments/notebooks/build_notebooks.py`.

# %%
import tempfile
from pathlib import Path

import pandas as pd
from IPython.display import display

from experiments.notebooks.helpers import plot_router_curves, router_results, show_figure

scratch = tempfile.TemporaryDirectory(prefix="t2isim-routers-")  # removed when the kernel exits
ROUTERS_DIR = router_results(Path(scratch.name))
summary = pd.read_csv(ROUTERS_DIR / "routers.csv")
curves = pd.read_csv(ROUTERS_DIR / "curves.csv")

# %% [markdown]
# ## Quality and ΔP vs heavy share
#
# Each router ranks the test prompts by the predicted benefit of the heavy model; sending
# the top share to the heavy model gives the routed quality (left) and ΔP, the share of the
# light→heavy quality gap recovered (right). The oracle (dashed) bounds what any router can
# reach; random (dotted) is the baseline a router must beat.
#
# **Papers' claim (RouteT2I, ECVL-Router):** learned routers recover most of the gap while
# sending a minority of prompts to the heavy model, well above random.

# %% tags=["figure"] t2isim_figure="router_curves"
show_figure(plot_router_curves(curves))

# %% [markdown]
# ## Summary per router
#
# APGR: area under the ΔP curve (oracle: the best reachable); CPT50: heavy share needed to
# recover 50% of the gap; `saving_at_dp50`: cloud calls saved vs random at ΔP = 50%;
# `light_share_at_10pct_drop`: prompts kept on the light model within a 10% quality drop
# from all-heavy.

# %%
summary.sort_values("apgr", ascending=False).reset_index(drop=True)

# %%
# ΔP per router at each heavy share, and each router's mean lift over random
dp = curves.pivot(index="router", columns="heavy_share", values="dp")
display(dp.loc[summary["router"]])
if "random" in dp.index:
    lift = (dp - dp.loc["random"]).mean(axis=1).rename("mean ΔP lift over random")
    display(lift.sort_values(ascending=False).to_frame())

# %%
# thresholds calibrated on the calibration split: realised heavy share on test
calibration_path = ROUTERS_DIR / "calibration.csv"
if calibration_path.is_file():
    calibration = pd.read_csv(calibration_path)
    display(calibration.pivot(index="router", columns="target", values="realised_test"))
else:
    print(f"no calibration.csv in {ROUTERS_DIR}")
