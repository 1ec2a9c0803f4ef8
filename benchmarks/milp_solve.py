"""Benchmark: HADIS MILP planner solve time over a sequence of re-plans.

Case 1 (HADIS scale): the default bundle's 4-model, 6-pair × 11 × 11 = 726-row cascade table,
16 workers, SLO 60 s, re-solving the observations (demand estimate, α·Q/λ queue delays) that
the controller handed the `hadis` policy in a simulation of the whole Azure-shaped trace
(`azure:peak=24,min=1`, one plan every 5 s), warm-started from the previous plan.
Case 2 (scale): 10 synthetic models, 45 pairs × 121 configurations = 5445 rows, 256 workers,
a sinusoid demand curve from 16 to 384 qps.

Baseline measured in the same run: the planner without warm start. Last line:
`p50_ms=… p99_ms=… scale_p50_ms=…` (warm-started).

    python benchmarks/milp_solve.py [--scale-plans 20]
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np

from policies.milp import (
    ARTIFACT_BATCH_SIZES,
    CascadeOption,
    ModelProfile,
    PlanTable,
    options_from_bundle,
    plan_table,
    profiles_from_bundle,
    solve_plan,
)

SLO_S = 60.0
GRID = np.round(np.linspace(0.0, 1.0, 11), 1)


def batch_latency_s(base_s: float) -> tuple[float, ...]:
    return tuple(base_s if b == 1 else base_s * b * 0.9 for b in ARTIFACT_BATCH_SIZES)


def synthetic_fid(fid_light: float, fid_heavy: float, router_ratio: float, disc_ratio: float):
    """A smooth stand-in for measured cascade FIDs: the light model's FID moves toward the
    heavy model's as the heavy share grows, with a hybrid bonus for mixing (HADIS Fig. 4: the
    best cascades beat the heavy model alone), rounded like the artifact's table."""
    heavy_share = router_ratio + (1.0 - router_ratio) * disc_ratio
    fid = fid_heavy + (fid_light - fid_heavy) * (1.0 - heavy_share) ** 1.5
    fid -= 0.06 * (fid_light - fid_heavy) * heavy_share * (1.0 - heavy_share)
    fid -= 0.02 * (fid_light - fid_heavy) * router_ratio * (1.0 - disc_ratio)
    return round(fid, 2), heavy_share


def synthetic_table(latency_s: tuple[float, ...], fid_alone: tuple[float, ...]) -> PlanTable:
    """Every light < heavy pair (models ordered fast to slow) × router_ratio × disc_ratio."""
    profiles = [
        ModelProfile(f"model{i}", ARTIFACT_BATCH_SIZES, batch_latency_s(base))
        for i, base in enumerate(latency_s)
    ]
    options = []
    for light, heavy in itertools.combinations(range(len(latency_s)), 2):
        for r, c in itertools.product(GRID, GRID):
            fid, share = synthetic_fid(fid_alone[light], fid_alone[heavy], r, c)
            options.append(CascadeOption(light, heavy, float(r), float(c), share, fid))
    return plan_table(options, profiles)


def hadis_table(bundle) -> PlanTable:
    return plan_table(options_from_bundle(bundle), profiles_from_bundle(bundle))


def azure_observations(bundle, trace_spec: str = "azure:peak=24,min=1") -> list:
    """The observations the controller handed `hadis` while simulating the whole trace."""
    import policies  # noqa: F401  (registers hadis)
    from experiments.inputs import resolve_trace
    from simulator.config import SimConfig
    from simulator.engine import simulate
    from simulator.policy import PolicyContext, make_policy

    config = SimConfig(n_workers=16, slo_s=SLO_S)
    policy = make_policy("hadis", PolicyContext(bundle, 16, SLO_S))
    seen, plan = [], policy.plan
    policy.plan = lambda observation: seen.append(observation) or plan(observation)
    trace = resolve_trace(trace_spec, bundle, seed=0)
    simulate(bundle, trace.arrival_s, trace.prompt_idx, policy, config)
    return seen


def demand_curve_qps(n_plans: int, peak_qps: float) -> np.ndarray:
    """A sinusoid-ish day: from 1 qps up to `peak_qps` and back, with a second smaller hump."""
    phase = np.linspace(0.0, 1.0, n_plans)
    shape = 0.75 * np.sin(np.pi * phase) ** 2 + 0.25 * np.sin(3 * np.pi * phase) ** 2
    return 1.0 + (peak_qps - 1.0) * shape / shape.max()


def solve_sequence(
    table: PlanTable,
    demands: np.ndarray,
    n_workers: int,
    warm: bool,
    delays: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Wall and CPU (this process) seconds of consecutive plans, and how many fell back.
    CPU time shows the cost apart from waiting for a core on a shared machine."""
    previous, wall, cpu, fallbacks = None, [], [], 0
    if delays is None:
        delays = np.zeros((len(demands), table.n_models))
    for demand, delay in zip(demands, delays, strict=True):
        start = time.process_time()
        plan = solve_plan(
            table,
            float(demand),
            delay,
            SLO_S,
            n_workers,
            previous=previous if warm else None,
        )
        cpu.append(time.process_time() - start)
        previous = plan
        wall.append(plan.solve_time_s)
        fallbacks += plan.status == "infeasible_fallback"
    return np.array(wall), np.array(cpu), fallbacks


def report(label: str, wall: np.ndarray, cpu: np.ndarray, fallbacks: int) -> None:
    p50, p99 = np.percentile(wall, [50, 99]) * 1e3
    print(
        f"  {label:13s} wall p50 {p50:7.2f} ms  p99 {p99:7.2f} ms  "
        f"cpu p50 {np.median(cpu) * 1e3:7.2f} ms  fallbacks {fallbacks}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale-plans", type=int, default=20, help="re-plans in the scale case")
    args = parser.parse_args()

    from policies.planning import queue_delay_s
    from simulator.default_bundle import build_default_bundle

    bundle = build_default_bundle()
    observations = azure_observations(bundle)
    demands = np.array([o.demand_qps for o in observations])
    delays = np.array([queue_delay_s(o) for o in observations])
    start = time.perf_counter()
    table = hadis_table(bundle)
    build_s = time.perf_counter() - start
    print(
        f"HADIS case: {bundle.name}, {len(table.options)} rows, 16 workers, "
        f"{len(observations)} plans of the Azure-shaped trace "
        f"(demand {demands.min():.1f}-{demands.max():.1f} qps), "
        f"table build {build_s * 1e3:.0f} ms, {int(table.exact_keep.sum())} rows after "
        "exact per-pair pruning"
    )
    results = {}
    for label, warm in (("default", True), ("default cold", False)):
        wall, cpu, fallbacks = solve_sequence(table, demands, 16, warm, delays)
        results[label] = wall
        report(label, wall, cpu, fallbacks)

    start = time.perf_counter()
    latency = tuple(np.geomspace(0.5, 27.0, 10).round(3))
    fid = tuple(np.linspace(30.0, 19.5, 10).round(2))
    scale = synthetic_table(latency, fid)
    build_s = time.perf_counter() - start
    scale_demands = demand_curve_qps(args.scale_plans, 24.0) * 16
    print(
        f"scale case: 10 models, {len(scale.options)} rows, 256 workers, table build "
        f"{build_s * 1e3:.0f} ms, {int(scale.exact_keep.sum())} rows after exact pruning"
    )
    scale_wall, scale_cpu, fallbacks = solve_sequence(scale, scale_demands, 256, True)
    report("default", scale_wall, scale_cpu, fallbacks)
    s50 = np.percentile(scale_wall, 50) * 1e3
    p50, p99 = np.percentile(results["default"], [50, 99]) * 1e3
    print(f"p50_ms={p50:.2f} p99_ms={p99:.2f} scale_p50_ms={s50:.2f}")


if __name__ == "__main__":
    main()
