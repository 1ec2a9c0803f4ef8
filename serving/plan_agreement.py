"""Whether a real run and a simulation had the same plan, epoch by epoch (the same-plan goal),
and the planners' inputs side by side at each re-plan (DIR/plan_inputs.csv)."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

PLAN_RATIOS = ("router_ratio", "disc_ratio")  # a plan's thresholds in a timeseries


def same_plan_share(
    real_ts: pd.DataFrame, sim_ts: pd.DataFrame, plan_interval_s: float, thresholds: bool = False
) -> float:
    """Share of plan epochs (consecutive plan intervals from t = 0) in which both runs had the
    same plan: the same flow (label) and the same workers per model in force for most of the
    epoch's seconds (`epoch_plans`); with `thresholds`, the same router and discriminator
    ratios too."""
    n = min(len(real_ts), len(sim_ts))
    if not n:
        return float("nan")
    real, sim = (epoch_plans(ts, n, plan_interval_s, thresholds) for ts in (real_ts, sim_ts))
    return float((real == sim).mean())


def epoch_plans(
    ts: pd.DataFrame, n: int, plan_interval_s: float, thresholds: bool = False
) -> pd.Series:
    """Per plan epoch of the first `n` seconds, the plan in force for most of its seconds (flow
    and workers per model, and with `thresholds` the router and discriminator ratios; the
    earliest such plan on a tie). A timeseries row holds the plan
    in force at the row's second, and a plan takes effect at an epoch's first second: the
    simulator's at that instant, the real path's a delivery delay later (the ingress's
    `set_plan`, tens of ms), so comparing the first second alone counts each change of plan as
    a disagreement."""
    columns = ["plan"] + [c for c in ts.columns if c.startswith("workers_")]
    plans = ts[columns].iloc[:n]
    if thresholds:  # as floats, rounded: a run read back from CSV may hold 0.3 as 0.3 or 0
        plans = plans.assign(**{c: ts[c].iloc[:n].astype(float).round(6) for c in PLAN_RATIOS})
    epoch = np.arange(n) // max(1, int(round(plan_interval_s)))
    labels = plans.astype(str).agg("|".join, axis=1).to_numpy()
    return pd.Series(labels).groupby(epoch).agg(lambda x: x.value_counts(sort=True).index[0])


def agreement_shares(
    real_ts: list[pd.DataFrame], sims_ts: list[pd.DataFrame], plan_interval_s: float
) -> dict[str, float]:
    """The same plan (`same_plan_share`'s epochs, flow and workers) over every pair of runs:
    among the real runs, among the simulations, and between a real run and a simulation (the
    same plan on expectations). Where the real system takes one of two plans, two of its runs
    disagree by chance, and a simulation drawing from the same mixture disagrees with a real
    run as often: the pairs between sides against the pairs within the real runs, not 1.
    NaN for a side without a pair."""
    n = min(len(ts) for ts in [*real_ts, *sims_ts])
    real = [epoch_plans(ts, n, plan_interval_s).to_numpy() for ts in real_ts]
    sims = [epoch_plans(ts, n, plan_interval_s).to_numpy() for ts in sims_ts]

    def mean_agreement(pairs) -> float:
        shares = [float((a == b).mean()) for a, b in pairs]
        return float(np.mean(shares)) if shares else float("nan")

    return {
        "among_real": mean_agreement(itertools.combinations(real, 2)),
        "among_simulations": mean_agreement(itertools.combinations(sims, 2)),
        "real_with_simulations": mean_agreement(itertools.product(real, sims)),
    }


def agreement_text(shares: dict[str, float], real_runs: int, simulations: int) -> str:
    """The note's sentence on `agreement_shares`."""
    return (
        "Same plan over every pair of runs (flow and workers, epoch by epoch): among the "
        f"{real_runs} real runs {shares['among_real']:.1%}, among the {simulations} "
        f"simulations {shares['among_simulations']:.1%}, a real run with a simulation "
        f"{shares['real_with_simulations']:.1%} (the same plan on expectations, to read "
        "against the first)."
    )


def plan_inputs_table(
    real_ts: list[pd.DataFrame], sim_ts: pd.DataFrame, plan_interval_s: float
) -> pd.DataFrame:
    """One row per re-plan (each plan epoch's first second after t = 0): the inputs the
    simulated and the real planners read there (demand estimate, queue estimate per model:
    the timeseries' `demand_estimate_qps` and `queue_estimate_*`, the real ones averaged over
    the runs; NaN where a run did not record them) and the share of real runs whose plan for
    that epoch is the simulation's (`epoch_plans`)."""
    n = min(len(sim_ts), *(len(ts) for ts in real_ts))
    step = max(1, int(round(plan_interval_s)))
    seconds = np.arange(step, n, step)
    inputs = ["demand_estimate_qps"] + [c for c in sim_ts.columns if c.startswith("queue_est")]
    sim_plans = epoch_plans(sim_ts, n, plan_interval_s)
    same = np.mean([epoch_plans(ts, n, plan_interval_s) == sim_plans for ts in real_ts], axis=0)
    table = pd.DataFrame({"second": seconds, "real_same_plan": same[seconds // step]})
    for column in inputs:
        table[f"sim_{column}"] = sim_ts[column].to_numpy()[seconds]
        real = [ts[column].to_numpy()[seconds] if column in ts else np.nan for ts in real_ts]
        table[f"real_{column}"] = np.mean(np.array(real, dtype=np.float64), axis=0)
    return table


def plan_inputs_text(table: pd.DataFrame) -> str:
    """The planner inputs' agreement at the re-plans where the real plans agree with the
    simulation's and where they part: median |real - simulated| demand and total queue."""
    queue_sim = table.filter(like="sim_queue_est").sum(axis=1, min_count=1)
    queue_real = table.filter(like="real_queue_est").sum(axis=1, min_count=1)
    demand = (table["real_demand_estimate_qps"] - table["sim_demand_estimate_qps"]).abs()
    queue = (queue_real - queue_sim).abs()
    parts = []
    same = table["real_same_plan"]
    for name, rows in (("agree", same == 1), ("part", same < 1)):
        if not rows.any():
            continue
        text = f"{int(rows.sum())} re-plans where the real plans {name}: demand |real - sim| "
        text += f"median {demand[rows].median():.2f} qps"
        if queue[rows].notna().any():
            text += (
                f", total queue |real - sim| median {queue[rows].median():.2f} "
                f"(simulated {queue_sim[rows].median():.2f})"
            )
        else:
            text += ", queue estimates not recorded by the real runs"
        parts.append(text)
    return "Planner inputs (DIR/plan_inputs.csv): " + "; ".join(parts) + "."
