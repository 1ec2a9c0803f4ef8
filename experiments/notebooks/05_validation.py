# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The simulator against the real serving path
#
# Reads what
#
# ```
# t2isim validate --bundle B --policy P --trace T --backend emulated|diffusers --out DIR/NAME
# ```
#
# writes (each `NAME/` holds the real runs `real-N/`, the simulation `sim/` and the fidelity
# table), from `$T2ISIM_VALIDATION`, by default the committed `results/validation/` (made by
# `python benchmarks/validation_report.py --run`; the notes and the goals are in
# `results/VALIDATION.md`). A real run folder is the same as a simulated one, so the same code
# reads both. This notebook is generated from `05_validation.py` (jupytext percent format;
# the figures are `serving/validation_figures.py`): edit that file and run
# `python experiments/notebooks/build_notebooks.py`.

# %%
from IPython.display import display

from experiments.notebooks.helpers import find_validation, setup_display, show_figure
from serving.overhead_ledger import OVERHEAD_LEDGER, read_overhead_ledger
from serving.validation_figures import (
    PREREGISTERED,
    experiments,
    goals_table,
    plot_latency_cdfs,
    plot_overhead_runs,
    plot_preregistered,
    plot_speed_bins,
    read_preregistered,
    speed_sets,
)

setup_display()
VALIDATION = find_validation()
NAMES = experiments(VALIDATION)
print(f"validation: {VALIDATION} ({len(NAMES)} experiments)")
goals_table(VALIDATION, NAMES)

# %% [markdown]
# ## Latency distributions, real and simulated
#
# Each real run's latency CDF (grey) and the simulation's (red), completed queries. The
# issue's goals: emulated backend |p50 error| ≤ 5% and |p99 error| ≤ 10%; tiny diffusers
# backend |p50 error| ≤ 10%. Where the simulated curve lies inside the real runs' band the
# difference is the runs' own spread; a curve beside the band is the simulator's error.

# %% tags=["figure"] t2isim_figure="validation_cdfs"
show_figure(plot_latency_cdfs(VALIDATION, NAMES))

# %% [markdown]
# ## The CPU replicas' speed during the runs
#
# For diffusers validations whose runs recorded each batch's CPU time: the workers' p50 CPU
# per batch of one in 10-s bins of each run, against the offline profile's p50 after idle
# (dashed). A line that moves is the machine's speed moving during the run, which an offline
# profile taken before cannot know.

# %% tags=["figure"] t2isim_figure="validation_speed"
SETS = speed_sets(VALIDATION)
if SETS:
    show_figure(plot_speed_bins(SETS))
else:
    print(f"no diffusers validation with speed_bins.csv under {VALIDATION}")

# %% [markdown]
# ## Every pre-registered tiny experiment
#
# Each row was judged on a rule written down before it ran. Filled markers: the p50 error with
# the offline profile (what the goal judges); hollow: with the service times the other real
# runs' workers measured (held out). The shaded band is the goal.

# %% tags=["figure"] t2isim_figure="validation_preregistered"
if (VALIDATION / PREREGISTERED).is_file():
    ledger = read_preregistered(VALIDATION)
    show_figure(plot_preregistered(ledger))
    display(ledger.drop(columns=["folder"]))
else:
    print(f"no {PREREGISTERED} in {VALIDATION}")

# %% [markdown]
# ## The serving path's own overhead, every run
#
# `benchmarks/serve_overhead.py --ledger`: each run's overhead p99 at 100 QPS (the static
# cascade at near-zero latency, 16 emulated workers, the load generator on the same 2 cores).
# Filled: the run had its 2 cores (under 5% of the CPU stolen, or not recorded), which the goal
# judges; hollow: the hypervisor took 5% or more meanwhile.

# %% tags=["figure"] t2isim_figure="validation_overhead"
if (VALIDATION / OVERHEAD_LEDGER).is_file():
    runs = read_overhead_ledger(VALIDATION / OVERHEAD_LEDGER)
    show_figure(plot_overhead_runs(runs))
    display(runs)
else:
    print(f"no {OVERHEAD_LEDGER} in {VALIDATION}")
