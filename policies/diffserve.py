"""DiffServe (Ahmad et al. 2025; HADIS baseline §5.1): a fixed cascade pair, discriminator only.

Every query runs on the light model; the discriminator escalates the lowest-quality ones. The
MILP maximises the confidence threshold (the share escalated, `disc_ratio`) subject to the same
throughput and latency constraints as HADIS, choosing workers and batch sizes. It is solved by
the HADIS MILP over the pair's router_ratio = 0 rows with objective 1 - disc_ratio; the plan
reports the table's FID of the chosen row.

Options: light, heavy (default SD3.5-Large-Turbo -> SD3.5-Large as in the paper, else the
second-fastest and the slowest model), spare, queue_alpha, time_limit_s.
"""

from __future__ import annotations

from policies.hadis import MilpCascadePolicy
from policies.milp import CascadeOption, PlanSolution
from policies.planning import PLANNER_OPTIONS, PolicyOptionError, take_options
from simulator.baselines import models_by_speed
from simulator.options import choice
from simulator.policy import PolicyContext, register_policy

PAPER_PAIR = ("SD3.5-Large-Turbo", "SD3.5-Large")


def default_pair(context: PolicyContext) -> tuple[str, str]:
    names = context.bundle.model_names
    if all(m in names for m in PAPER_PAIR):
        return PAPER_PAIR
    by_speed = models_by_speed(context.bundle)
    return by_speed[min(1, len(by_speed) - 2)], by_speed[-1]


class DiffServePolicy(MilpCascadePolicy):
    uses_router = False

    def __init__(self, context: PolicyContext) -> None:
        light, heavy = default_pair(context)
        names = tuple(context.bundle.model_names)
        declared = {**PLANNER_OPTIONS, "light": choice(light, names), "heavy": choice(heavy, names)}
        parsed = take_options("diffserve", dict(context.options), declared)
        light, heavy = parsed["light"], parsed["heavy"]
        bundle = context.bundle
        rows = bundle.cascades
        rows = rows[(rows.light == light) & (rows.heavy == heavy) & (rows.router_ratio == 0)]
        if rows.empty:
            raise PolicyOptionError(f"diffserve: the bundle has no {light}->{heavy} rows")
        # objective: maximise the threshold = minimise 1 - disc_ratio
        objective = [
            CascadeOption(
                bundle.model_index(light),
                bundle.model_index(heavy),
                0.0,
                float(r.disc_ratio),
                float(r.heavy_share),
                1.0 - float(r.disc_ratio),
            )
            for r in rows.itertuples()
        ]
        self.table_fid = [float(f) for f in rows["fid"]]
        super().__init__("diffserve", context, objective, declared)

    def reported_fid(self, solution: PlanSolution) -> float:
        return self.table_fid[solution.option_index]


register_policy("diffserve")(DiffServePolicy)
