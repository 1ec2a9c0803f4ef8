"""HADIS and its ablations: hybrid routing + MILP re-planning (HADIS §4.2-4.4, §5.4).

Every `plan_interval_s` the MILP (policies/milp.py) picks the cascade configuration (pair,
router ratio, discriminator ratio), workers per model and batch sizes that minimise FID subject
to throughput >= routed demand and Σ (batch latency + α·Q/λ) <= SLO, over the bundle's lookup
table. The ablations restrict the table and the mechanisms:

* `hadis`       — hybrid: router bypass and discriminator escalation, all pairs (§4).
* `router-only` — rows with disc_ratio = 0; no discriminator (§5.4 "RO").
* `disc-only`   — rows with router_ratio = 0; no router (§5.4 "DO").
* `random`      — hybrid table and allocator, but random hardness and quality scores (§5.4);
                  its FID is reported as the share-weighted single-model FID (its routing
                  carries no information, so the table's selection gain does not apply).

Options (`--option key=value`): planner=default|faithful (faithful: the artifact's controller,
policies/artifact_controller.py, with artifact_revision=dae194b|dbd6629 and
demand_signal=observation|artifact), spare=distribute|idle|keep (keep: planner=faithful only,
GPUs beyond the plan keep their model, as the artifact), queue_alpha,
time_limit_s, router=NAME (a trained router of routers/ replaces the bundle's hardness score;
see policies/learned_router.py), router_features=auto|bow|hadis8|minilm|bow+hadis8,
router_folds=K (its cross-fitting folds, default 5), router_seed (default: the run's seed),
swap_aware=true|false and swap_fid_s_per_gpu_s (default 1.0): the swap-cost rule
(`policies.planning.SwapRule`: keep the plan in force while it serves the demand, until the
quality it forgoes, in FID-seconds, reaches swap_fid_s_per_gpu_s per GPU-second of model loading
a change costs); on by default with planner=default, off with planner=faithful (the artifact
plans without swap cost; swap_aware=true is refused there). With every load time 0 it changes
nothing.
"""

from __future__ import annotations

import numpy as np

from policies.artifact_controller import ArtifactController
from policies.milp import CascadeOption, PlanSolution, plan_table, solve_plan
from policies.planning import (
    HADIS_OPTIONS,
    PolicyOptionError,
    queue_delay_s,
    scaled_profiles,
    solution_to_plan,
    swap_rule,
    take_options,
)
from simulator.options import Option
from simulator.policy import Observation, Plan, PolicyContext, register_policy


class MilpCascadePolicy:
    """Re-plans a cascade with the MILP over (a subset of) the bundle's lookup table."""

    uses_router = True
    uses_discriminator = True
    informative_scores = True

    def __init__(
        self,
        name: str,
        context: PolicyContext,
        options: list[CascadeOption],
        declared: dict[str, Option] | None = None,
    ) -> None:
        self.name = name
        self.context = context
        self.options = take_options(name, dict(context.options), declared or HADIS_OPTIONS)
        bundle = context.bundle
        self.router_scores = bundle.router_score
        if self.options["router"]:
            from policies.learned_router import learned_router_scores

            router_seed = self.options["router_seed"]
            self.router_scores = learned_router_scores(
                bundle,
                self.options["router"],
                context.seed if router_seed is None else router_seed,
                self.options["router_features"],
                n_folds=self.options["router_folds"],
            )
        self.quality_scores = bundle.disc_score
        self.table = plan_table(options, scaled_profiles(bundle, context.time_scale))
        self.previous: PlanSolution | None = None
        self.artifact: ArtifactController | None = None
        if self.options["planner"] == "faithful":
            self.artifact = ArtifactController(
                bundle,
                options,
                time_scale=context.time_scale,
                n_workers=context.n_workers,
                slo_s=context.slo_s,
                revision=self.options["artifact_revision"],
                demand_signal=self.options["demand_signal"],
                queue_factor=self.options["queue_alpha"],
                time_limit_s=self.options["time_limit_s"],
                keep_spare=self.options["spare"] == "keep",
            )
            self.table = self.artifact.table
        elif self.options["spare"] == "keep":
            raise PolicyOptionError(
                f"{name}: option spare: 'keep' needs planner=faithful (the artifact's placement: "
                "GPUs beyond the plan keep their model); use distribute or idle"
            )
        # the swap-cost rule (policies.planning.SwapRule) where the declared options have it
        self.swap_rule = (
            swap_rule(name, self.options, context) if "swap_aware" in self.options else None
        )
        self.in_force: tuple[PlanSolution, Plan] | None = None  # the last plan returned

    def solve(self, observation: Observation) -> PlanSolution:
        if self.artifact is not None:
            return self.artifact.solve(observation)
        solution = solve_plan(
            self.table,
            observation.demand_qps,
            queue_delay_s(observation, self.options["queue_alpha"]),
            self.context.slo_s,
            self.context.n_workers,
            previous=self.previous,
            time_limit_s=self.options["time_limit_s"],
        )
        self.previous = solution
        return solution

    def plan(self, observation: Observation) -> Plan:
        solution = self.solve(observation)
        return self.hold_or_switch(observation, solution, self.to_plan(solution))

    def hold_or_switch(self, observation: Observation, solution: PlanSolution, plan: Plan) -> Plan:
        """`plan` (of `solution`), or the plan in force where the swap-cost rule keeps it."""
        if self.swap_rule is None:
            return plan
        delay = queue_delay_s(observation, self.options["queue_alpha"])
        if self.swap_rule.keeps(
            self.table, self.in_force, plan, observation.current, observation, delay
        ):
            solution, plan = self.in_force
            self.previous = solution  # the MILP's warm start: the plan kept
        self.in_force = (solution, plan)
        return plan

    def to_plan(self, solution: PlanSolution) -> Plan:
        plan = solution_to_plan(
            solution,
            self.table,
            self.context.bundle,
            self.context.n_workers,
            spare=self.options["spare"],
            reported_fid=self.reported_fid(solution),
        )
        return plan if self.artifact is None else self.artifact.with_loads(plan, solution)

    def reported_fid(self, solution: PlanSolution) -> float | None:
        """The FID the plan reports (None: the chosen table row's)."""
        return None


def table_options(context: PolicyContext, keep=lambda row: True) -> list[CascadeOption]:
    """The bundle's cascade rows as MILP options, filtered by `keep(row)`."""
    bundle = context.bundle
    rows = bundle.cascades
    options = [
        CascadeOption(
            bundle.model_index(row.light),
            bundle.model_index(row.heavy),
            float(row.router_ratio),
            float(row.disc_ratio),
            float(row.heavy_share),
            float(row.fid),
        )
        for row in rows.itertuples()
        if keep(row)
    ]
    if not options:
        raise PolicyOptionError("the bundle's cascade table has no rows this policy can use")
    return options


@register_policy("hadis")
def hadis(context: PolicyContext) -> MilpCascadePolicy:
    return MilpCascadePolicy("hadis", context, table_options(context))


@register_policy("router-only")
def router_only(context: PolicyContext) -> MilpCascadePolicy:
    policy = MilpCascadePolicy(
        "router-only", context, table_options(context, lambda row: row.disc_ratio == 0)
    )
    policy.uses_discriminator = False
    return policy


@register_policy("disc-only")
def disc_only(context: PolicyContext) -> MilpCascadePolicy:
    policy = MilpCascadePolicy(
        "disc-only", context, table_options(context, lambda row: row.router_ratio == 0)
    )
    policy.uses_router = False
    return policy


@register_policy("random")
def random_scores(context: PolicyContext) -> MilpCascadePolicy:
    policy = MilpCascadePolicy("random", context, table_options(context))
    rng = np.random.default_rng(np.random.SeedSequence([context.seed, 0x5EED]))
    policy.router_scores = rng.random(context.bundle.n_prompts)
    policy.quality_scores = rng.random(context.bundle.disc_score.shape)
    policy.informative_scores = False
    return policy
