"""One simulation end to end: policy by name, simulate, metrics, provenance hashes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

import simulator.baselines  # noqa: F401  (registers the core policies by name)
from simulator.bundle import Bundle
from simulator.config import SimConfig
from simulator.engine import ProgressCallback, RawRun, simulate
from simulator.metrics import compute_metrics
from simulator.policy import Policy, PolicyContext, make_policy
from simulator.results import code_version, sha256_json
from simulator.workloads import Trace, TraceError, validate_prompt_ids


@dataclass(frozen=True)
class RunOutput:
    queries: pd.DataFrame
    timeseries: pd.DataFrame
    summary: dict
    config: dict  # the resolved configuration, as written to config.json
    raw: RawRun


def build_policy(
    bundle: Bundle,
    policy_name: str,
    config: SimConfig,
    policy_options: Mapping[str, object] | None = None,
) -> Policy:
    """The named policy for a run of `config` on `bundle` (the simulator's and the serving
    path's: the swap-aware planner gets the run's load time, `config.load_s`)."""
    context = PolicyContext(
        bundle=bundle,
        n_workers=config.n_workers,
        slo_s=config.slo_s,
        time_scale=config.time_scale,
        seed=config.seed,
        options=dict(policy_options or {}),
        load_s=config.load_s,
    )
    return make_policy(policy_name, context)


def run_simulation(
    bundle: Bundle,
    trace: Trace,
    policy_name: str,
    config: SimConfig,
    policy_options: Mapping[str, object] | None = None,
    progress: ProgressCallback | None = None,
    bundle_hash: str | None = None,
    replicate: int = 0,
    planner_bundle: Bundle | None = None,
) -> RunOutput:
    """Simulate `trace` on `bundle` under the named policy; policies must be registered.
    `replicate` k > 0: the cluster's randomness from another stream (`engine.simulate`),
    recorded in the summary. `planner_bundle`: the bundle the policy plans with, where it is
    not the one the workers serve by (a validation's measured service times: the serving
    path's planner has the profile)."""
    if len(trace) == 0:
        raise TraceError(f"{trace.name or 'trace'}: empty trace")
    validate_prompt_ids(trace, bundle.n_prompts, trace.name or "trace")
    options = dict(policy_options or {})
    policy = build_policy(planner_bundle or bundle, policy_name, config, options)
    raw = simulate(
        bundle,
        trace.arrival_s,
        trace.prompt_idx,
        policy,
        config,
        progress=progress,
        replicate=replicate,
    )
    queries, timeseries, summary = compute_metrics(raw, bundle, policy, config)
    resolved = {"policy": policy_name, "policy_options": options, "sim": config.to_dict()}
    summary["hashes"] = {
        "config": sha256_json(resolved),
        "bundle": bundle_hash or bundle.content_hash(),
        "trace": trace.content_hash(),
        "code_version": code_version(),
    }
    summary["bundle"] = bundle.name
    summary["trace"] = trace.name
    if replicate:
        summary["replicate"] = replicate
    resolved["hashes"] = summary["hashes"]
    return RunOutput(queries, timeseries, summary, resolved, raw)
