"""planner=faithful is the HADIS artifact's controller: its latency table, demand signal and,
decision by decision, the optimum of its per-combination MILP (checked against brute force).

Solver tolerance: HiGHS accepts a constraint violated by at most 1e-6 (its default
mip_feasibility_tolerance, the same as Gurobi's FeasibilityTol that the artifact ran with). The
objective is integral and solved with mip_abs_gap 0.5, so a reported optimum is exact. A state in
which some candidate's constraint lies within 1e-6 of binding has two defensible answers; the
brute force detects those (it solves with the band counted feasible and infeasible) and leaves
them out — the grid keeps well over 200 unambiguous states.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from experiments.cli import app
from policies.artifact_controller import (
    ARTIFACT_ROWS,
    REVISIONS,
    ArtifactController,
    ArtifactControllerError,
    ArtifactDemandSignal,
    ArtifactPlacement,
    ControllerDecision,
    queue_delay_s,
    windowed_ewma,
)
from policies.milp import CascadeOption
from simulator.config import SimConfig
from simulator.errors import InputError
from simulator.policy import Observation, Plan, PolicyContext, make_policy
from simulator.presets import PRESETS, get_preset
from tests.bundle_factory import make_bundle

NAMES = ("SDXL-Lightning", "SD3.5-Large-Turbo", "SD3.5-Medium", "SD3.5-Large")
L40S_S = (0.5, 1.3, 13.0, 27.0)  # batch-1 latencies the artifact scales by 0.1
SIZES = (1, 2, 4, 8, 16, 32)
TOL = 1e-6


@pytest.fixture(scope="module")
def bundle():
    return make_bundle(
        base_latency_s=dict(zip(NAMES, L40S_S)),
        fid_alone=dict(zip(NAMES, (29.76, 25.23, 20.61, 19.95))),
        batch_sizes=SIZES,
        n_prompts=200,
    )


def bundle_options(bundle) -> list[CascadeOption]:
    c = bundle.cascades
    return [
        CascadeOption(NAMES.index(lt), NAMES.index(hv), float(r), float(d), float(h), float(f))
        for lt, hv, r, d, h, f in zip(
            c.light, c.heavy, c.router_ratio, c.disc_ratio, c.heavy_share, c.fid
        )
    ]


def controller(bundle, options=None, n_workers=16, slo_s=6.0, signal="observation", rev="dae194b"):
    return ArtifactController(
        bundle,
        bundle_options(bundle) if options is None else options,
        time_scale=0.1,
        n_workers=n_workers,
        slo_s=slo_s,
        revision=rev,
        demand_signal=signal,
        queue_factor=1.2,
        time_limit_s=10.0,
    )


def observe(
    demand=0.0, arrivals=(0, 0, 0, 0), queue=(0, 0, 0, 0), now_s=0.0, inflight=0, current=None
):
    return Observation(
        now_s, demand, demand, inflight, tuple(queue), tuple(arrivals), 16, 6.0, current
    )


# ----------------------------------------------------------------------------- facts


def test_latency_table_is_the_artifacts_rounded_batch_model(bundle):
    table = controller(bundle).controller_table
    assert table.latency_s.tolist() == [
        [0.1, 0.1, 0.2, 0.4, 0.7, 1.4],
        [0.1, 0.2, 0.5, 0.9, 1.9, 3.7],
        [1.3, 2.3, 4.7, 9.4, 18.7, 37.4],
        [2.7, 4.9, 9.7, 19.4, 38.9, 77.8],
    ]


def test_table_is_the_49_rows_grouped_like_pandas(bundle):
    table = controller(bundle).controller_table
    assert len(table.options) == len(ARTIFACT_ROWS) == 49
    pairs = [(table.options[int(g[0])].light, table.options[int(g[0])].heavy) for g in table.combos]
    assert pairs == [(2, 3), (1, 2), (0, 1)]  # membership tuples (0,0,1,1) < (0,1,1,0) < ...
    assert [len(g) for g in table.combos] == [6, 31, 12]
    first = table.options[0]
    assert (first.light, first.heavy, first.router_ratio, first.disc_ratio) == (2, 3, 0.2, 0.5)
    # light stage: all demand (bypassed queries too); heavy: round(r + (1 - r) c, 2)
    assert table.route[0].tolist() == [0.0, 0.0, 1.0, 0.6]


@pytest.mark.parametrize(
    "revision,kwargs",
    [
        ("dbd6629", {"halflife": 3, "adjust": False}),
        ("dae194b", {"com": 2.1}),
    ],
)
def test_windowed_ewma_is_pandas_ewm(revision, kwargs):
    rng = np.random.default_rng(3)
    r = REVISIONS[revision]
    for n in (1, 2, 7, 20):
        x = rng.uniform(0, 50, n)
        want = pd.Series(x).ewm(**kwargs).mean().iloc[-1]
        assert windowed_ewma(x, r.ewma_alpha, r.ewma_adjust) == pytest.approx(want, rel=1e-12)


def test_demand_signal_window_skips_empty_ticks_and_seeds_models_with_zero():
    signal = ArtifactDemandSignal(2, REVISIONS["dbd6629"])
    inflight = [0, 3, 0, 5] + list(range(1, 30))
    arrivals = [(t % 4, 2 * t) for t in range(len(inflight))]
    queues = [(t % 3, t) for t in range(len(inflight))]
    for n, a, q in zip(inflight, arrivals, queues):
        signal.update(n, a, q)
    kept = [t for t, n in enumerate(inflight) if n > 0]
    system = pd.Series([inflight[t] * 1.05 for t in kept][-20:])
    assert signal.demand == pytest.approx(system.ewm(halflife=3, adjust=False).mean().iloc[-1])
    per_model = pd.Series(([0.0] + [arrivals[t][1] for t in kept])[-20:])
    want = per_model.ewm(halflife=3, adjust=False).mean().iloc[-1]
    assert signal.demand_per_model[1] == pytest.approx(want)
    queue = pd.Series(([0.0] + [queues[t][0] for t in kept])[-20:])
    assert signal.queue_per_model[0] == pytest.approx(
        queue.ewm(halflife=3, adjust=False).mean().iloc[-1]
    )


def test_queue_delay_is_littles_law_with_safety_factor_and_zero_without_demand():
    delay = queue_delay_s(np.array([4.0, 0.0, 2.0]), np.array([6.0, 9.0, 0.0]))
    assert delay.tolist() == [pytest.approx(1.8), 0.0, 0.0]


# ----------------------------------------------------------------------------- brute force


def brute_force(options, lam, arrivals, queues, n_workers, slo_s, tol):
    """The artifact's solve_milp_loop by enumeration: per combination (pandas groupby order),
    every (row, batch size of each member) with the fewest GPUs that carry the demand; the
    lowest FID wins, ties to the earlier combination; inside a combination the port's
    documented tie-break (table order, fewest GPUs, smaller batch of the higher-index member,
    then of the lower). `tol` > 0 counts a 1e-6 violation feasible, < 0 demands 1e-6 slack."""
    if lam == 0:
        return None
    delay = [0.0 if d == 0 else 1.2 * q / d for d, q in zip(arrivals, queues)]
    latency = [
        [round(base * 0.1 * b, 1) if b == 1 else round(base * 0.1 * b * 0.9, 1) for b in SIZES]
        for base in L40S_S
    ]
    groups: dict[tuple, list[int]] = {}
    for k, o in enumerate(options):
        groups.setdefault(tuple(int(i in (o.light, o.heavy)) for i in range(4)), []).append(k)
    best = None
    for key in sorted(groups):
        found = None
        for k in groups[key]:
            o = options[k]
            members = sorted((o.light, o.heavy))
            route = {
                o.light: 1.0,
                o.heavy: round(o.router_ratio + (1 - o.router_ratio) * o.disc_ratio, 2),
            }
            for j_lo in range(6):
                for j_hi in range(6):
                    js = (j_lo, j_hi)
                    path = sum(latency[m][j] + delay[m] for m, j in zip(members, js))
                    if path > slo_s + tol:
                        continue
                    workers = [
                        max(0, math.ceil((lam * route[m] - tol) / (SIZES[j] / latency[m][j])))
                        for m, j in zip(members, js)
                    ]
                    if sum(workers) > n_workers:
                        continue
                    cand = ((o.fid, k, sum(workers), j_hi, j_lo), k, members, workers, js)
                    if found is None or cand[0] < found[0]:
                        found = cand
        if found is not None and (best is None or found[0][0] < best[0][0]):
            best = found
    if best is None:
        return None
    _, k, members, workers, js = best
    w, b = [0] * 4, [0] * 4
    for m, x, j in zip(members, workers, js):
        w[m], b[m] = x, SIZES[j]
    return k, tuple(w), tuple(b)


def random_plan(rng) -> Plan | None:
    if rng.random() < 0.3:
        return None
    light, heavy = sorted(rng.choice(4, 2, replace=False))
    return Plan(
        workers={NAMES[light]: int(rng.integers(0, 9)), NAMES[heavy]: int(rng.integers(0, 9))},
        batch_size={NAMES[light]: 1, NAMES[heavy]: 2},
        light=NAMES[light],
        heavy=NAMES[heavy],
        router_ratio=float(rng.integers(0, 11) / 10),
        disc_ratio=float(rng.integers(0, 11) / 10),
    )


def test_decisions_equal_the_brute_force_optimum_on_a_grid_of_states(bundle):
    rng = np.random.default_rng(12)
    artifact_rows = {(o[0], o[1], o[2], o[3]) for o in ARTIFACT_ROWS}
    # two tables: the bundle's FIDs (many equal FIDs: exercises tie-breaking) and random ones
    own = [
        o
        for o in bundle_options(bundle)
        if (o.light, o.heavy, round(o.router_ratio, 6), round(o.disc_ratio, 6)) in artifact_rows
    ]
    shuffled = [
        CascadeOption(o.light, o.heavy, o.router_ratio, o.disc_ratio, o.heavy_share, float(f))
        for o, f in zip(own, rng.uniform(19, 30, len(own)))
    ]
    compared, ambiguous, outcomes = 0, 0, set()
    for table_options in (own, shuffled):
        for n_workers, slo_s in ((16, 6.0), (8, 6.0), (16, 3.0), (4, 12.0)):
            port = controller(bundle, table_options, n_workers=n_workers, slo_s=slo_s)
            order = [port.table.options.index(o) for o in port.controller_table.options]
            rows = port.controller_table.options
            for _ in range(33):
                lam = 0.0 if rng.random() < 0.03 else float(np.exp(rng.uniform(-1, 5.5)))
                arrivals = np.where(rng.random(4) < 0.3, 0.0, rng.uniform(0.5, 30, 4))
                queues = np.where(rng.random(4) < 0.4, 0.0, rng.uniform(0, 25, 4))
                loose = brute_force(rows, lam, arrivals, queues, n_workers, slo_s, TOL)
                if loose != brute_force(rows, lam, arrivals, queues, n_workers, slo_s, -TOL):
                    ambiguous += 1
                    continue
                solution = port.solve(observe(lam, arrivals, queues, current=random_plan(rng)))
                if loose is None:
                    assert solution.status == "infeasible_fallback"
                    assert solution.workers == tuple(
                        n_workers // 4 + (i < n_workers % 4) for i in range(4)
                    )
                    assert solution.batch_sizes == (1, 1, 1, 1)
                    outcomes.add("fallback")
                else:
                    k, workers, batch = loose
                    assert solution.status == "optimal"
                    assert solution.option_index == order[k]
                    assert solution.workers == workers
                    assert solution.batch_sizes == batch
                    outcomes.add((rows[k].light, rows[k].heavy))
                compared += 1
    assert compared >= 200 and ambiguous <= 10
    assert outcomes == {"fallback", (2, 3), (1, 2), (0, 1)}  # every kind of answer was checked


def test_fallback_at_zero_and_overwhelming_demand_is_round_robin_at_half_half(bundle):
    port = controller(bundle)
    for lam in (0.0, 1e5):
        solution = port.solve(observe(lam))
        option = port.table.options[solution.option_index]
        assert solution.status == "infeasible_fallback"
        assert (option.light, option.heavy, option.router_ratio, option.disc_ratio) == (
            0,
            3,
            0.5,
            0.5,
        )
        assert solution.workers == (4, 4, 4, 4) and solution.batch_sizes == (1, 1, 1, 1)


def test_artifact_signal_replans_every_fifth_tick_and_refuses_other_cadences(bundle):
    port = controller(bundle, signal="artifact")
    seen = []
    for t in range(11):
        solution = port.solve(
            observe(
                now_s=float(t), inflight=30 if t else 0, arrivals=(20, 20, 5, 5), queue=(1, 1, 1, 1)
            )
        )
        seen.append(solution)
    assert seen[0].status == "infeasible_fallback"  # t = 0: nothing in flight yet
    assert seen[1] is seen[4] is seen[0] and seen[5] is seen[9] and seen[10] is not seen[9]
    assert seen[5].status == "optimal"
    with pytest.raises(ArtifactControllerError, match="1 s tick"):
        port.solve(observe(now_s=15.0, inflight=30))


# ----------------------------------------------------------------------------- spare=keep


def test_keep_placement_reloads_the_first_gpus_and_leaves_the_rest():
    """The reloading loop: the plan on GPUs 0..sum(x)-1 in model order, the rest untouched."""
    placement = ArtifactPlacement(16)
    fallback = ControllerDecision(None, (4, 4, 4, 4), (1, 1, 1, 1), None)
    assert placement.apply(fallback) == ((4, 4, 4, 4), (1, 1, 1, 1))
    # GPUs 0-2 -> model 1 (batch 4), 3-4 -> model 2 (batch 8); 5-7 keep model 1, 8-11
    # model 2, 12-15 model 3 (batch 1): a member's kept GPUs run at the plan's batch size
    first = ControllerDecision(7, (0, 3, 2, 0), (0, 4, 8, 0), 22.0)
    assert placement.apply(first) == ((0, 6, 6, 4), (0, 4, 8, 1))
    # GPUs 0-4 -> model 0, 5-7 -> model 3; 8-11 keep model 2 and the batch size they were
    # loaded with (the fallback's 1), 12-15 model 3
    second = ControllerDecision(40, (5, 0, 0, 3), (2, 0, 0, 16), 25.0)
    assert placement.apply(second) == ((5, 0, 4, 7), (2, 0, 1, 16))
    assert placement.model == [0] * 5 + [3] * 3 + [2] * 4 + [3] * 4


def test_keep_puts_every_gpu_in_the_plan(bundle):
    context = PolicyContext(
        bundle, 16, 6.0, time_scale=0.1, options={"planner": "faithful", "spare": "keep"}
    )
    policy = make_policy("hadis", context)
    first = policy.plan(observe())  # demand 0: the fallback, 4 GPUs per model
    assert dict(first.workers) == dict.fromkeys(NAMES, 4)
    plan = policy.plan(observe(demand=2.0, arrivals=(2, 0, 0, 0), queue=(1, 0, 0, 0)))
    # the controller's plan: SD3.5-Medium x3 -> SD3.5-Large x4 on GPUs 0-6; GPU 7 keeps
    # SD3.5-Large-Turbo, 8-11 SD3.5-Medium and 12-15 SD3.5-Large from the fallback
    assert policy.artifact.placement.model[:8] == [2, 2, 2, 3, 3, 3, 3, 1]
    assert plan.label == "SD3.5-Medium->SD3.5-Large"
    assert dict(plan.workers) == {"SD3.5-Large-Turbo": 1, "SD3.5-Medium": 7, "SD3.5-Large": 8}
    assert plan.batch_size["SD3.5-Large-Turbo"] == 1  # kept from the fallback
    # the GPUs each decision reloads reach the simulator (Plan.loaded); the rest keep their
    # model, batch size and thresholds there
    assert first.loaded == tuple(name for name in NAMES for _ in range(4))
    assert plan.loaded == ("SD3.5-Medium",) * 3 + ("SD3.5-Large",) * 4
    assert policy.plan(observe(demand=2.0, arrivals=(2, 0, 0, 0), queue=(1, 0, 0, 0))) == plan


def test_without_keep_the_plan_carries_no_loads(bundle):
    context = PolicyContext(bundle, 16, 6.0, time_scale=0.1, options={"planner": "faithful"})
    assert make_policy("hadis", context).plan(observe()).loaded is None


@pytest.mark.parametrize("policy_name", ["hadis", "cache-d", "diffserve"])
def test_keep_without_the_faithful_planner_is_one_line_error(bundle, policy_name):
    context = PolicyContext(bundle, 16, 6.0, time_scale=0.1, options={"spare": "keep"})
    with pytest.raises(InputError, match="spare: 'keep' needs planner=faithful") as info:
        make_policy(policy_name, context)
    assert "\n" not in str(info.value)


def test_bundle_without_the_artifacts_models_is_refused():
    with pytest.raises(InputError, match="model order"):
        controller(make_bundle(), options=[])


# ----------------------------------------------------------------------------- preset


def test_preset_values_are_sourced_and_explicit_options_win():
    preset = get_preset("artifact-testbed")
    assert all(s.source for s in preset.config.values())
    fields, policy, options = preset.apply(
        {"n_workers": 4, "slo_s": 60.0}, "hadis", {"spare": "idle"}, {"workers"}
    )
    config = SimConfig(**fields)
    assert (config.n_workers, config.slo_s, config.time_scale) == (4, 6.0, 0.1)
    assert (config.plan_interval_s, config.ewma_com, config.inflight_factor) == (1.0, 0.0, 1.2)
    assert (config.demand_estimator, config.late_factor) == ("artifact-inflight", 2.0)
    assert preset.policy_options["spare"].value == "keep"
    assert policy == "hadis"
    assert options["planner"] == "faithful" and options["demand_signal"] == "artifact"
    assert options["spare"] == "idle"
    assert set(PRESETS) >= {"artifact-testbed"}


@pytest.mark.parametrize("escalation", ["next-hosted", "next-stage"])
def test_preset_fallback_chains_escalations_through_every_hosted_model(bundle, escalation):
    """Before the first MILP (tick 5) the fallback hosts all four models, 4 GPUs each, and the
    plan names SDXL-Lightning -> SD3.5-Large at r = c = 0.5. The artifact's load balancer
    (escalation=next-hosted, the preset's) sends an escalated image to the next model hosted,
    so SD3.5-Large-Turbo and SD3.5-Medium judge and return some of them (FAITHFUL.md #6, #12);
    to the plan's next stage, they go straight to SD3.5-Large."""
    from simulator.run import run_simulation
    from simulator.workloads import constant

    fields, policy, options = get_preset("artifact-testbed").apply({}, "hadis", {}, set())
    config = SimConfig(**{**fields, "escalation": escalation})
    assert config.on_plan_change == "keep"
    trace = constant(16.0, 4.0, n_prompts=bundle.n_prompts, seed=0)
    raw = run_simulation(bundle, trace, policy, config, options).raw
    assert raw.plans[0].plan.label == "SDXL-Lightning->SD3.5-Large"
    early = raw.completion_s < 5.0  # done under the fallback
    returned = set(raw.final_model[early].tolist())  # models that returned an image
    if escalation == "next-hosted":
        assert returned == {0, 1, 2, 3}
        assert set(raw.final_model[early & raw.escalated].tolist()) >= {1, 2}
    else:
        assert returned == {0, 3}
    assert early.sum() >= 25


def test_preset_runs_the_artifacts_worker_rules(bundle):
    """FAITHFUL.md #9-#11 under the preset: the fallback's r = 0.5 becomes the sorted router
    score at index int(N 0.5) - 1 (the artifact's order statistic: 101 of 200 prompts bypass,
    where the 0.5-quantile lets 100), and every bypassed query also counts at the first model."""
    from simulator.run import run_simulation
    from simulator.workloads import Trace

    fields, policy, options = get_preset("artifact-testbed").apply({}, "hadis", {}, set())
    config = SimConfig(**fields)
    assert (config.threshold_rule, config.batch_latency) == ("order-statistic", "artifact")
    assert config.disc_cost_per == "batch" and config.bypass_arrivals_at_first
    assert config.disc_cost_s * config.time_scale == pytest.approx(0.01)  # 10 ms per batch
    rank = np.argsort(bundle.router_score, kind="stable")
    prompts = rank[68:132][np.argsort(np.arange(64) * 37 % 64)]  # ranks 68-131, mixed
    trace = Trace(np.arange(64) / 16.0, prompts)  # all before the first MILP (tick 5)
    raw = run_simulation(bundle, trace, policy, config, options).raw
    assert raw.plans[0].plan.router_ratio == 0.5 and raw.plans[1].applied_s >= 5.0
    theta = np.sort(bundle.router_score)[int(200 * 0.5) - 1]
    np.testing.assert_array_equal(raw.bypassed, bundle.router_score[prompts] >= theta)
    assert raw.bypassed.sum() == 33  # ranks 99-131


def test_cli_preset_applies_its_values_and_explicit_options_win(bundle, tmp_path):
    from simulator.bundle import write_bundle

    out = tmp_path / "run"
    args = ["simulate", "--preset", "artifact-testbed", "--trace", "constant:rate=2,duration=6"]
    args += ["--bundle", str(write_bundle(bundle, tmp_path / "bundle"))]
    args += ["--workers", "8", "--option", "spare=idle", "--out", str(out), "--quiet"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    assert config["policy"] == "hadis"
    assert config["policy_options"]["planner"] == "faithful"
    assert config["policy_options"]["spare"] == "idle"  # explicit --option wins
    sim = config["sim"]
    assert sim["n_workers"] == 8  # explicit --workers wins
    assert (sim["slo_s"], sim["time_scale"], sim["plan_interval_s"]) == (6.0, 0.1, 1.0)


def test_unknown_preset_is_one_line_exit_2(tmp_path):
    result = CliRunner().invoke(
        app, ["simulate", "--preset", "nope", "--out", str(tmp_path / "r"), "--quiet"]
    )
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0
    assert "preset 'nope'" in result.output and "artifact-testbed" in result.output


def test_hadis_artifact_bundle_gives_the_artifacts_latencies_and_best_row(hadis_artifact):
    from simulator.artifact import import_hadis_artifact

    port = controller(import_hadis_artifact(hadis_artifact))
    assert port.controller_table.latency_s[:, 0].tolist() == [0.1, 0.1, 1.3, 2.7]
    assert port.controller_table.options[0].fid == 19.29  # (2, 3) r = 0.2, c = 0.5
    assert len(port.controller_table.options) == 49
