"""`SimConfig` fields as command options, built from the fields' metadata.

`config_options` gives a typer command one option per `SimConfig` field — flag, help, unit,
allowed values and default from `simulator.config.SETTINGS` — and hands the command their
values as one mapping `config`, each checked by `check_field` (the check a sweep spec's values
get). Values are read as text, so a number is parsed as everywhere else (`--slo 1_0` is
refused, not read as 10) and a bad one is refused in the same words; switches are
`--flag/--no-flag`. A field added to `SimConfig` becomes an option without an edit here.
A command may exclude fields (`excluded`: field -> why): each keeps its flag as a hidden option
that refuses any value in one line (unless the command declares that flag for itself).
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable, Mapping
from dataclasses import Field, fields
from typing import Annotated

import typer

from simulator.config import SETTINGS, ConfigError, SimConfig, check_field, field_label
from simulator.limits import Choice, Interval, Switch
from simulator.presets import cli_parameter

PANEL = "Simulation settings (SimConfig; each is also a sweep grid axis)"
UNIT_METAVARS = {"s": "SECONDS", "x": "FACTOR", "ticks": "TICKS"}


def option_help(name: str) -> str:
    """`End-to-end latency SLO; slower queries are timeouts. Allowed: a finite number >= 0.001.`"""
    declared = SETTINGS[name]
    text = declared.help + "."
    if not isinstance(declared.domain, Switch):
        text += f" Allowed: {declared.domain.describe()}."
    if declared.limit is not None:
        text += f" Bounded by {declared.limit.env}."
    return text


def option_metavar(name: str) -> str:
    domain = SETTINGS[name].domain
    if isinstance(domain, Choice):
        return "NAME"
    if isinstance(domain, Interval) and domain.integer:
        return "INTEGER"
    return UNIT_METAVARS.get(SETTINGS[name].unit, "NUMBER")


def _parameter(config_field: Field) -> inspect.Parameter:
    """The typer parameter of one SimConfig field."""
    name, declared = config_field.name, SETTINGS[config_field.name]
    if isinstance(declared.domain, Switch):
        flags = f"{declared.flag}/--no-{declared.flag.removeprefix('--')}"
        info = typer.Option(flags, help=option_help(name), rich_help_panel=PANEL)
        annotation = Annotated[bool, info]
    else:  # read as text (the default too), parsed by check_field
        info = typer.Option(
            declared.flag, help=option_help(name), metavar=option_metavar(name),
            rich_help_panel=PANEL,
        )
        annotation = Annotated[str | None, info]
    return inspect.Parameter(
        cli_parameter(name), inspect.Parameter.KEYWORD_ONLY, default=config_field.default,
        annotation=annotation,
    )


def _refusing(name: str) -> inspect.Parameter:
    """A hidden option under field `name`'s flag whose every value (None: not given) is refused."""
    declared = SETTINGS[name]
    flags = declared.flag
    if isinstance(declared.domain, Switch):
        flags += f"/--no-{declared.flag.removeprefix('--')}"
    info = typer.Option(flags, hidden=True)
    annotation = Annotated[bool | None if isinstance(declared.domain, Switch) else str | None, info]
    return inspect.Parameter(
        cli_parameter(name), inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation
    )


def config_options(
    command: Callable[..., None], *, excluded: Mapping[str, str] | None = None
) -> Callable[..., None]:
    """`command` (which takes `config`) as a typer command with one option per SimConfig
    field; `config` maps every field but the `excluded` ones to its checked value (the field's
    default unless given: a default read back from its text is the same number). An excluded
    field given is refused: `service_time (--service-time): 'lognormal' is not settable: WHY`."""
    excluded = dict(excluded or {})
    signature = inspect.signature(command)
    hints = typing.get_type_hints(command, include_extras=True)
    own = [
        p.replace(annotation=hints[p.name])
        for p in signature.parameters.values()
        if p.name != "config"
    ]
    added = {f.name: _parameter(f) for f in fields(SimConfig) if f.name not in excluded}
    own_names = {p.name for p in own}
    refused = {
        name: _refusing(name) for name in excluded if cli_parameter(name) not in own_names
    }

    @functools.wraps(command)
    def with_config(**params: object) -> None:
        for name, p in refused.items():
            value = params.pop(p.name)
            if value is not None:
                why = excluded[name]
                raise ConfigError(f"{field_label(name)}: {value!r} is not settable: {why}")
        config = {name: check_field(name, params.pop(p.name)) for name, p in added.items()}
        return command(config=config, **params)

    parameters = [*own, *added.values(), *refused.values()]
    with_config.__signature__ = signature.replace(parameters=parameters)
    with_config.__annotations__ = {p.name: p.annotation for p in parameters}
    return with_config
