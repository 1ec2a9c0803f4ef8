"""Typed policy options (`--option key=value`, a sweep's `policy_options`).

A policy declares each option once, with its type and range (in the spirit of scikit-learn's
`_parameter_constraints`)::

    OPTIONS = {
        "router_ratio": real(0.2, FRACTION),
        "light_workers": integer(None, Interval(1, integer=True)),  # None: derived
        "planner": choice("default", ("default", "faithful")),
        "light": text(None),
    }
    options = take_options("static-cascade", context.options, OPTIONS)

`take_options` rejects unknown keys and converts and checks every given value; its one error
class, `PolicyOptionError`, names the policy, the option, the value and what is allowed.
Values arrive parsed as JSON where they are JSON (`--option x=0.5` gives 0.5, `x=abc` the text
'abc'); numbers given as text must be plain decimals (`simulator.limits.parse_number`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from simulator.errors import InputError
from simulator.limits import Interval


class PolicyOptionError(InputError):
    """An unknown or invalid policy option; the message names policy, option and value."""


@dataclass(frozen=True)
class Option:
    """One declared option: its default, kind ("real", "integer", "choice", "text", "flag"),
    the range of a number or the allowed texts of a choice."""

    default: object
    kind: str
    interval: Interval | None = None
    choices: tuple[str, ...] = ()

    def parse(self, policy: str, key: str, value: object) -> object:
        """`value` converted to this option's kind; PolicyOptionError otherwise. None is
        accepted where the default is None (the policy derives the value)."""
        name = f"{policy}: option {key}"
        if value is None and self.default is None:
            return None
        if self.kind in ("real", "integer"):
            try:
                return self.interval.check(value, name)
            except InputError as exc:
                raise PolicyOptionError(str(exc)) from None
        if self.kind == "flag":
            flags = {True: True, False: False, "true": True, "false": False}
            if isinstance(value, bool | str) and value in flags:
                return flags[value]
            raise PolicyOptionError(f"{name}: {value!r} is not true or false")
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise PolicyOptionError(f"{name}: {value!r} is not a text value")
        text_value = str(value)
        if self.choices and text_value not in self.choices:
            raise PolicyOptionError(
                f"{name}: {text_value!r} is not one of {', '.join(self.choices)}"
            )
        return text_value


def real(default: float | None, interval: Interval) -> Option:
    """A finite real number in `interval`."""
    return Option(default, "real", interval=interval)


def integer(default: int | None, interval: Interval) -> Option:
    """An integer in `interval` (an integral float such as 4.0 counts)."""
    return Option(default, "integer", interval=Interval(
        interval.low, interval.high, interval.low_open, interval.high_open, integer=True
    ))


def choice(default: str, choices: tuple[str, ...]) -> Option:
    """One of `choices`."""
    return Option(default, "choice", choices=tuple(choices))


def text(default: str | None) -> Option:
    """Free text (a model or router name, checked where it is used)."""
    return Option(default, "text")


def flag(default: bool) -> Option:
    """true or false."""
    return Option(default, "flag")


def take_options(
    policy: str, given: Mapping[str, object], declared: Mapping[str, Option]
) -> dict[str, object]:
    """The declared options' defaults with the given values parsed over them; an unknown key
    or a bad value raises PolicyOptionError naming the policy, the option and the value."""
    unknown = sorted(set(given) - set(declared))
    if unknown:
        known = ", ".join(sorted(declared)) or "none"
        raise PolicyOptionError(f"{policy}: unknown option(s) {', '.join(unknown)}; known: {known}")
    undeclared = sorted(key for key, option in declared.items() if not isinstance(option, Option))
    if undeclared:
        raise TypeError(
            f"{policy}: declare option(s) {', '.join(undeclared)} with simulator.options "
            "(real, integer, choice, text, flag), not as a bare default"
        )
    merged = {key: option.default for key, option in declared.items()}
    for key, value in given.items():
        merged[key] = declared[key].parse(policy, key, value)
    return merged
