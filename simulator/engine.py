"""Run one simulation: wire bundle, trace, policy and config into a SimPy environment."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import simpy

from simulator.bundle import Bundle
from simulator.cluster import Cluster
from simulator.config import SimConfig
from simulator.controller import Controller, PlanRecord
from simulator.policy import Observation, Policy

ProgressCallback = Callable[[float, float], None]  # (simulated seconds done, horizon)
SEED_STREAM_DISPATCH = 1  # the cluster's random stream (worker choice, mix draws, service noise)


@dataclass(frozen=True)
class RawRun:
    """Everything a run produced, before metrics."""

    arrival_s: np.ndarray
    prompt_idx: np.ndarray
    start_s: np.ndarray
    first_done_s: np.ndarray
    completion_s: np.ndarray
    first_model: np.ndarray
    final_model: np.ndarray
    bypassed: np.ndarray
    escalated: np.ndarray
    dropped: np.ndarray
    plans: list[PlanRecord]
    planner_wall_s: list[tuple[float, float]]
    demand_log: list[float]  # controller's demand estimate per tick
    queue_log: list[tuple[float, ...]]  # controller's queue estimate per model, per tick
    busy_s: float  # GPU-seconds spent in batches and model loads
    end_s: float  # simulated time when the run stopped
    policy_name: str
    # each batch a simulation served, in the order they ended: (worker, model, start_s,
    # service_s, size, judged); empty for a replay, whose workers report their own
    # (`serving.loadgen.served_batches`)
    batches: tuple[tuple[int, int, float, float, int, bool], ...] = ()
    # the policy's input at each of its calls (`Controller.observations`), the plan in force
    # then as `current`; a replay's, from the serving controller's log, without it (None)
    observations: tuple[Observation, ...] = ()


def stream_seed(seed: int, stream: int, replicate: int = 0) -> int:
    """A 64-bit seed for one purpose derived from the master seed; `replicate` k > 0 gives
    the purpose another stream (the k-th replicate of a run's randomness)."""
    entropy = [seed, stream] if replicate == 0 else [seed, stream, replicate]
    return int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0])


def simulate(
    bundle: Bundle,
    arrival_s: np.ndarray,
    prompt_idx: np.ndarray,
    policy: Policy,
    config: SimConfig,
    progress: ProgressCallback | None = None,
    n_chunks: int = 100,
    replicate: int = 0,
) -> RawRun:
    """Replay a trace (sorted arrival times, prompt ids) through the cluster under a policy.

    The run ends when every query finished, or at last arrival + late_factor x SLO (queries
    still unfinished then are dropped by definition). `replicate` k > 0 draws the cluster's
    timing (hops, the order of a re-plan's swaps, service noise) from another stream and,
    with `SimConfig.replicate_redraws=all`, its draws too (worker choice, mix draws), the same
    trace, policy and seed otherwise: the simulator's own run-to-run spread.
    """
    arrival_s = np.asarray(arrival_s, dtype=np.float64)
    prompt_idx = np.asarray(prompt_idx, dtype=np.int64)
    redraws_all = config.replicate_redraws == "all"  # else the timing alone
    env = simpy.Environment()
    cluster = Cluster(
        env,
        bundle,
        config,
        policy,
        arrival_s,
        prompt_idx,
        stream_seed(config.seed, SEED_STREAM_DISPATCH, replicate * redraws_all),
        stream_seed(config.seed, SEED_STREAM_DISPATCH, replicate),
    )
    controller = Controller(
        cluster,
        policy,
        config,
        bundle.overhead_s("plan")[0],
        bundle.overhead_s("route")[0],
        bundle.overhead_s("configure")[0],
    )
    controller.initial_plan()
    env.process(controller.process())
    cluster.start()
    last = float(arrival_s[-1]) if len(arrival_s) else 0.0
    horizon = last + cluster.router_shift_s + config.late_factor * config.slo_s
    step = horizon / n_chunks
    now = 0.0
    while now < horizon:
        now = min(horizon, now + step)
        env.run(until=now)
        if progress is not None:
            progress(now, horizon)
        if cluster.finished == cluster.n_queries:
            break
    busy_s = sum(w.busy_s for w in cluster.workers) + cluster.load_busy_s
    return RawRun(
        arrival_s=arrival_s,
        prompt_idx=prompt_idx,
        start_s=np.array(cluster.start_s),
        first_done_s=np.array(cluster.first_done_s),
        completion_s=np.array(cluster.completion_s),
        first_model=np.array(cluster.first_model, dtype=np.int64),
        final_model=np.array(cluster.final_model, dtype=np.int64),
        bypassed=np.array(cluster.bypassed, dtype=bool),
        escalated=np.array(cluster.escalated, dtype=bool),
        dropped=np.array(cluster.dropped, dtype=bool),
        plans=controller.plans,
        planner_wall_s=controller.planner_wall_s,
        demand_log=controller.demand_log,
        queue_log=controller.queue_log,
        busy_s=busy_s,
        end_s=float(env.now),
        policy_name=policy.name,
        batches=tuple(cluster.batch_log),
        observations=tuple(controller.observations),
    )
