"""One config source (issue 13 item 3): what `SimConfig`'s field metadata declares is what
`t2isim simulate`, a sweep spec, `t2isim serve` and `t2isim validate` accept — every field
settable by each (the real path: all but those it sets itself, refused in one line), the same
defaults, the same choices, the same error (class and words) for a bad value."""

from __future__ import annotations

import json

import pytest
import typer.main
import yaml
from bundle_factory import make_bundle
from typer.testing import CliRunner

import simulator.policy
import simulator.run
from experiments.cli import app
from experiments.cli_config import option_help
from experiments.sweep import GRID_AXES, SweepSpecError, expand_grid, load_spec
from serving.setup import REAL_PATH_SETS, ServeSetup
from simulator.bundle import write_bundle
from simulator.config import (
    DEMAND_ESTIMATORS,
    DISPATCH_MODES,
    SERVICE_TIME_MODELS,
    SETTINGS,
    ConfigError,
    SimConfig,
    check_field,
)
from simulator.errors import InputError
from simulator.limits import Choice, Switch
from simulator.presets import cli_parameter
from simulator.queues import QUEUE_DISCIPLINES

FIELDS = SimConfig.field_names()
SIMULATE_OPTIONS = {p.name: p for p in typer.main.get_command(app).commands["simulate"].params}
TRACE = "constant:rate=1,duration=6"

# a valid value other than the default for every field (real numbers written as floats: a
# sweep keeps a number as written, so `slo_s: 20` and `--slo 20` differ as 20 and 20.0)
CHANGED = {
    "n_workers": 3, "slo_s": 12.5, "time_scale": 0.5, "seed": 7, "tick_s": 0.5,
    "plan_interval_s": 2.0, "demand_estimator": "inflight", "ewma_com": 0.0,
    "inflight_factor": 1.5, "router_cost_s": 0.0, "disc_cost_s": 0.01, "drop_factor": 2.0,
    "late_factor": 3.0, "load_s": 1.5, "dispatch": "jsq", "max_wait_s": 0.25,
    "service_time": "lognormal", "idle_latency": False, "plan_delay_s": 0.5,
    "plan_delay_measured": True,
    "queue": "edf", "on_plan_change": "keep", "reroute_order": "arrival",
    "escalation": "next-hosted", "threshold_rule": "order-statistic",
    "bypass_arrivals_at_first": True,
    "batch_latency": "artifact", "disc_cost_per": "batch", "route_at": "arrival",
    "plan_switch": "together", "replicate_redraws": "all",
}
# a bad value for every field that takes one on the command line, as typed there
BAD = {
    "n_workers": "abc", "slo_s": "inf", "time_scale": "1e-300", "seed": "-1", "tick_s": "0",
    "plan_interval_s": "1e9", "demand_estimator": "oracle", "ewma_com": "-1",
    "inflight_factor": "0", "router_cost_s": "nan", "disc_cost_s": "-0.5", "drop_factor": "101",
    "late_factor": "-2", "load_s": "-1", "dispatch": "lifo", "max_wait_s": "inf",
    "service_time": "gamma", "plan_delay_s": "1e300", "queue": "random",
    "on_plan_change": "drop", "reroute_order": "random", "escalation": "any",
    "threshold_rule": "median", "batch_latency": "linear", "disc_cost_per": "image",
    "route_at": "client",
    "plan_switch": "later", "replicate_redraws": "some",
}


class Captured(Exception):
    """Raised instead of simulating: carries the SimConfig the command built."""


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory):
    return write_bundle(make_bundle(), tmp_path_factory.mktemp("bundle") / "b")


@pytest.fixture
def simulate_config(bundle_dir, tmp_path, monkeypatch):
    """`t2isim simulate ARGS` up to the simulation: the SimConfig it would run with, or the
    CLI result when it exits first."""

    def capture(bundle, trace, policy, config, options, **kwargs):
        raise Captured(config)

    monkeypatch.setattr(simulator.run, "run_simulation", capture)

    def run(*args: str):
        result = CliRunner().invoke(app, [
            "simulate", "--bundle", str(bundle_dir), "--policy", "clipper-light", "--trace",
            TRACE, "--out", str(tmp_path / "run"), "--quiet", *args,
        ])
        return result.exception.args[0] if isinstance(result.exception, Captured) else result

    return run


def sweep_spec(tmp_path, bundle_dir, grid: dict, sim: dict | None = None) -> str:
    path = tmp_path / "spec.yaml"
    spec = {"bundle": str(bundle_dir), "trace": TRACE, "grid": {"policy": "clipper-light", **grid}}
    path.write_text(yaml.safe_dump({**spec, "sim": sim or {}}))
    return str(path)


def cli_args(values: dict) -> list[str]:
    args = []
    for name, value in values.items():
        flag = SETTINGS[name].flag
        if isinstance(SETTINGS[name].domain, Switch):
            args.append(flag if value else "--no-" + flag.removeprefix("--"))
        else:
            args += [flag, str(value)]
    return args


def as_json(config: SimConfig) -> str:
    """The config as run keys hash it (ints and floats apart)."""
    return json.dumps(config.to_dict(), sort_keys=True)


def test_tables_cover_every_field():
    assert set(CHANGED) == set(FIELDS)
    assert all(CHANGED[name] != getattr(SimConfig(), name) for name in FIELDS)
    switches = {name for name in FIELDS if isinstance(SETTINGS[name].domain, Switch)}
    assert set(BAD) == set(FIELDS) - switches
    assert switches == {"plan_delay_measured", "bypass_arrivals_at_first", "idle_latency"}


@pytest.mark.parametrize("name", FIELDS)
def test_every_field_is_a_simulate_option_and_a_grid_axis(name):
    option = SIMULATE_OPTIONS[cli_parameter(name)]  # the name `--preset` looks it up by
    assert SETTINGS[name].flag in option.opts
    assert option.help == option_help(name) and SETTINGS[name].help in option.help
    assert name in GRID_AXES


def test_declared_flags_keep_their_names():
    """The flags users and scripts already type (issue 13: simulate named 15 fields its own way)."""
    assert {name: SETTINGS[name].flag for name in FIELDS if SETTINGS[name].flag != "--" +
            name.replace("_", "-")} == {
        "n_workers": "--workers", "slo_s": "--slo", "plan_interval_s": "--plan-interval",
        "router_cost_s": "--router-cost", "disc_cost_s": "--disc-cost",
        "max_wait_s": "--max-wait", "plan_delay_s": "--plan-delay",
    }


def test_defaults_agree(simulate_config, tmp_path, bundle_dir):
    from_cli = simulate_config()
    from_sweep = expand_grid(load_spec(sweep_spec(tmp_path, bundle_dir, {})))[0].config
    assert as_json(from_cli) == as_json(from_sweep) == as_json(SimConfig())


def test_every_field_is_set_alike_by_simulate_and_by_a_sweep(simulate_config, tmp_path,
                                                             bundle_dir):
    from_cli = simulate_config(*cli_args(CHANGED))
    assert isinstance(from_cli, SimConfig), from_cli.output
    as_axes = {name: [value] for name, value in CHANGED.items()}
    from_grid = expand_grid(load_spec(sweep_spec(tmp_path, bundle_dir, as_axes)))[0].config
    from_sim = expand_grid(load_spec(sweep_spec(tmp_path, bundle_dir, {}, CHANGED)))[0].config
    assert from_cli.to_dict() == CHANGED
    assert as_json(from_cli) == as_json(from_grid) == as_json(from_sim)


@pytest.mark.parametrize(
    ("name", "names"),
    [("dispatch", DISPATCH_MODES), ("queue", QUEUE_DISCIPLINES),
     ("demand_estimator", DEMAND_ESTIMATORS), ("service_time", SERVICE_TIME_MODELS)],
)
def test_choices_agree(simulate_config, tmp_path, bundle_dir, name, names):
    assert SETTINGS[name].domain == Choice(names)
    assert f"Allowed: one of {', '.join(names)}." in SIMULATE_OPTIONS[cli_parameter(name)].help
    grid = expand_grid(load_spec(sweep_spec(tmp_path, bundle_dir, {name: list(names)})))
    assert [getattr(point.config, name) for point in grid] == list(names)
    for choice in names:
        assert getattr(simulate_config(SETTINGS[name].flag, choice), name) == choice


@pytest.mark.parametrize("name", sorted(BAD))
def test_a_bad_value_is_the_same_error_everywhere(simulate_config, tmp_path, bundle_dir, name):
    text = BAD[name]
    with pytest.raises(ConfigError) as checked:
        check_field(name, text)
    message = str(checked.value)
    assert message.startswith(f"{name} ({SETTINGS[name].flag}): ")
    cli = simulate_config(SETTINGS[name].flag, text)
    assert (cli.exit_code, cli.output) == (2, f"error: {message}\n")
    value = yaml.safe_load(text)  # as a sweep spec gives it: -1 a number, lifo a text
    for section, grid, sim in (("grid", {name: [value]}, None), ("sim", {}, {name: value})):
        spec = sweep_spec(tmp_path, bundle_dir, grid, sim)
        with pytest.raises(SweepSpecError) as swept:
            load_spec(spec)
        assert str(swept.value) == f"{spec}: {section}: {message}"
        assert type(swept.value.__cause__) is ConfigError
        assert str(swept.value.__cause__) == message


def test_command_line_numbers_are_plain_decimals(simulate_config):
    """Not Python's float(): `1_0` is refused, not read as 10 (README: numbers are checked)."""
    cli = simulate_config("--late-factor", "1_0")
    assert cli.output == ("error: late_factor (--late-factor): '1_0' is not a finite number in "
                          "(0, 100]\n")


def test_a_switch_takes_no_text_on_the_command_line_and_a_bool_in_a_sweep(
        simulate_config, tmp_path, bundle_dir):
    cli = simulate_config("--plan-delay-measured=1")
    assert cli.exit_code == 2 and "--plan-delay-measured" in cli.output
    with pytest.raises(SweepSpecError, match=r"grid: plan_delay_measured \(--plan-delay-measured"
                                             r"\): 1 is not true or false$"):
        load_spec(sweep_spec(tmp_path, bundle_dir, {"plan_delay_measured": [1]}))


def test_sweep_command_reports_the_simulate_error(tmp_path, bundle_dir):
    spec = sweep_spec(tmp_path, bundle_dir, {"queue": ["lifo"]})
    result = CliRunner().invoke(app, ["sweep", spec, "--status"])
    assert (result.exit_code, result.output) == (
        2, f"error: {spec}: grid: queue (--queue): 'lifo' is not one of fifo, edf\n")


def test_a_preset_yields_to_any_field_given(simulate_config):
    config = simulate_config("--preset", "artifact-testbed", "--ewma-com", "3", "--late-factor",
                             "4")
    assert (config.ewma_com, config.late_factor) == (3.0, 4.0)  # given: --ewma-com, --late-factor
    assert (config.slo_s, config.time_scale, config.plan_interval_s) == (6.0, 0.1, 1.0)  # preset


# ----------------------------------------------------------------- serve and validate (no Ray)

SERVED = [name for name in FIELDS if name not in REAL_PATH_SETS]
SERVING_COMMANDS = ("serve", "validate")


@pytest.fixture
def serving_setup(bundle_dir, tmp_path, monkeypatch):
    """`t2isim serve|validate ARGS` up to Ray: the checked ServeSetup it would run, or the CLI
    result when it exits first."""
    build = ServeSetup.build

    def capture(self):
        build(self)
        raise Captured(self)

    monkeypatch.setattr(ServeSetup, "build", capture)

    def run(command: str, *args: str):
        own = ["--out", str(tmp_path / "report")] if command == "validate" else []
        result = CliRunner().invoke(app, [
            command, "--bundle", str(bundle_dir), "--policy", "clipper-light", *own, *args,
        ])
        return result.exception.args[0] if isinstance(result.exception, Captured) else result

    return run


def test_the_real_path_sets_only_declared_fields():
    assert set(REAL_PATH_SETS) < set(FIELDS)
    assert set(REAL_PATH_SETS) == {
        "dispatch", "service_time", "idle_latency", "max_wait_s", "plan_delay_s",
        "plan_delay_measured",
        "queue", "on_plan_change", "reroute_order", "escalation", "bypass_arrivals_at_first",
        "batch_latency", "disc_cost_per",
    }


@pytest.mark.parametrize("command", SERVING_COMMANDS)
def test_serving_options_are_simulates(command):
    """Every field the real path takes is an option as in simulate (flag, help); every other
    keeps its flag only to be refused (serve's --dispatch is its replica choice)."""
    options = {p.name: p for p in typer.main.get_command(app).commands[command].params}
    for name in SERVED:
        option = options[cli_parameter(name)]
        simulated = SIMULATE_OPTIONS[cli_parameter(name)]
        assert (option.opts, option.help, option.hidden) == (simulated.opts, simulated.help,
                                                             False)
    for name in REAL_PATH_SETS:
        option = options[cli_parameter(name)]
        assert SETTINGS[name].flag in option.opts
        assert option.hidden is not (command == "serve" and name == "dispatch")


@pytest.mark.parametrize("command", SERVING_COMMANDS)
def test_every_served_field_is_set_as_simulate_sets_it(serving_setup, simulate_config, command):
    changed = {name: CHANGED[name] for name in SERVED}
    setup = serving_setup(command, *cli_args(changed))
    assert isinstance(setup, ServeSetup), setup.output
    simulated = simulate_config(*cli_args(changed))
    dispatch = "jsq" if command == "validate" else SimConfig().dispatch  # validate: jsq, both
    assert setup.sim == {**simulated.to_dict(), "dispatch": dispatch}
    assert {name: setup.sim[name] for name in SERVED} == changed
    assert setup.dispatch == ("jsq" if command == "validate" else "p2c")


def test_defaults_agree_with_simulate(serving_setup):
    assert serving_setup("serve").sim == SimConfig().to_dict()
    assert serving_setup("validate").sim == {**SimConfig().to_dict(), "dispatch": "jsq"}


def test_serve_dispatch_is_the_replica_choice(serving_setup):
    setup = serving_setup("serve", "--dispatch", "jsq")
    assert (setup.dispatch, setup.sim["dispatch"]) == ("jsq", SimConfig().dispatch)


@pytest.mark.parametrize("command", SERVING_COMMANDS)
@pytest.mark.parametrize("name", sorted(set(BAD) & set(SERVED)))
def test_a_bad_value_is_simulates_error(serving_setup, simulate_config, command, name):
    simulated = simulate_config(SETTINGS[name].flag, BAD[name])
    assert simulated.exit_code == 2 and simulated.output.startswith(f"error: {name} (")
    served = serving_setup(command, SETTINGS[name].flag, BAD[name])
    assert (served.exit_code, served.output) == (2, simulated.output)


def refused(name: str, value: object) -> str:
    return f"{name} ({SETTINGS[name].flag}): {value!r} is not settable: {REAL_PATH_SETS[name]}"


@pytest.mark.parametrize("command", SERVING_COMMANDS)
@pytest.mark.parametrize("name", sorted(REAL_PATH_SETS))
def test_a_field_the_real_path_sets_is_refused_on_the_command_line(serving_setup, command,
                                                                     name):
    if command == "serve" and name == "dispatch":
        pytest.skip("serve's --dispatch is its replica choice (test_serve_dispatch_is_...)")
    args = cli_args({name: CHANGED[name]})
    value = CHANGED[name] if isinstance(SETTINGS[name].domain, Switch) else args[1]
    result = serving_setup(command, *args)
    assert (result.exit_code, result.output) == (2, f"error: {refused(name, value)}\n")


@pytest.mark.parametrize("name", sorted(REAL_PATH_SETS))
def test_a_field_the_real_path_sets_is_refused_in_a_setup(bundle_dir, name):
    """The other route: a ServeSetup made in code (benchmarks, tests, another process)."""
    sim = {**SimConfig().to_dict(), name: CHANGED[name]}
    setup = ServeSetup(str(bundle_dir), "clipper-light", {}, sim)
    with pytest.raises(InputError) as caught:
        setup.build()
    assert str(caught.value) == refused(name, CHANGED[name])


def test_validate_dispatch_is_taken_in_a_setup_that_dispatches_alike(bundle_dir):
    sim = {**SimConfig().to_dict(), "dispatch": "jsq"}
    bundle, policy, config = ServeSetup(str(bundle_dir), "clipper-light", {}, sim,
                                        dispatch="jsq").build()
    assert config.dispatch == "jsq"


def test_the_real_path_plans_with_the_configs_load_time(bundle_dir, monkeypatch):
    """As `simulator.run`: the policy gets `load_s` (the swap-aware planner's load time)."""
    contexts = []
    make = simulator.policy.make_policy
    monkeypatch.setattr(simulator.run, "make_policy",  # serving builds it by simulator.run
                        lambda name, context: contexts.append(context) or make(name, context))
    sim = SimConfig(n_workers=3, slo_s=12.5, time_scale=0.5, seed=7, load_s=0.0).to_dict()
    ServeSetup(str(bundle_dir), "clipper-light", {}, sim).build()
    (context,) = contexts
    assert (context.n_workers, context.slo_s, context.time_scale, context.seed,
            context.load_s) == (3, 12.5, 0.5, 7, 0.0)
