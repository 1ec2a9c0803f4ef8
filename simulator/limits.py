"""The one validation layer for input values: documented ranges and bounds on simulated size.

Every number a user gives (CLI options, trace spec strings and files, sweep YAML, policy
options) is checked by an `Interval` — finite, of the right kind (integer or real) and inside a
documented range — before any arithmetic uses it; a named setting by a `Choice`, a yes/no
setting by `SWITCH`. The size of a simulation is bounded by `SizeLimit`s checked *before*
anything of that size is allocated; each bound can be raised by an environment variable,
which its error message names:

| bound | default | environment variable |
|---|---|---|
| queries in a trace | 2,000,000 | `T2ISIM_MAX_QUERIES` |
| GPU workers | 1,024 | `T2ISIM_MAX_WORKERS` |
| simulated seconds (last arrival, duration, SLO, waits) | 172,800 (2 d) | `T2ISIM_MAX_SIM_S` |
| runs a sweep grid expands to | 10,000 | `T2ISIM_MAX_SWEEP_RUNS` |
| seeded splits a router evaluation repeats over | 1,000 | `T2ISIM_MAX_SPLITS` |

A bound only accepts or refuses an input; it never changes a result.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass

import numpy as np

from simulator.errors import InputError


class LimitError(InputError):
    """A number outside its documented range, or a simulation larger than a size bound."""


_DECIMAL = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_INTEGER = re.compile(r"[+-]?\d+")


def parse_number(text: str) -> float | int | None:
    """A number written plainly in decimal (`8`, `-0.5`, `.5`, `1e3`; surrounding blanks
    ignored): an int when it has no point or exponent, else a float. None for anything else,
    which Python's own parsers would accept: `1_0`, `inf`, `nan`, `0x10`, full-width digits."""
    text = text.strip()
    if not text.isascii():
        return None
    if _INTEGER.fullmatch(text):
        return int(text)
    if _DECIMAL.fullmatch(text):
        return float(text)
    return None


NON_FINITE_TEXTS = ("inf", "+inf", "-inf", "infinity", "+infinity", "-infinity", "nan")


def read_number(text: str) -> float | int | str:
    """The number `text` writes — plain decimal (`parse_number`), or inf / nan, which no range
    accepts — else `text` itself: a command-line value as a check sees it and names it."""
    number = parse_number(text)
    if number is not None:
        return number
    return float(text) if text.strip().lower() in NON_FINITE_TEXTS else text


def _number_text(value: object) -> str:
    """The value as a message shows it (long texts cut)."""
    text = f"{value:g}" if isinstance(value, float) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


@dataclass(frozen=True)
class Interval:
    """A documented range of a number: [low, high], either end open or absent (None)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    integer: bool = False

    def _bound(self, number: float) -> str:
        if isinstance(number, int):
            return str(number)
        return f"{number:.0f}" if self.integer else f"{number:g}"

    def describe(self) -> str:
        """`an integer in [1, 1024]`, `a finite number in (0, 1]`, `a finite number >= 0`."""
        kind = "an integer" if self.integer else "a finite number"
        if self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"{kind} in {left}{self._bound(self.low)}, {self._bound(self.high)}{right}"
        if self.low is not None:
            return f"{kind} {'>' if self.low_open else '>='} {self._bound(self.low)}"
        if self.high is not None:
            return f"{kind} {'<' if self.high_open else '<='} {self._bound(self.high)}"
        return kind

    def contains(self, number: float) -> bool:
        if isinstance(number, float) and not math.isfinite(number):
            return False
        if self.low is not None and (number < self.low or (self.low_open and number == self.low)):
            return False
        return self.high is None or not (
            number > self.high or (self.high_open and number == self.high)
        )

    def check(self, value: object, name: str) -> float | int:
        """`value` as an int (integer intervals) or float; LimitError naming `name`, the value
        and the range otherwise. Booleans are not numbers here; strings must be plain decimal
        (`parse_number`)."""
        number = self.coerce(value)
        if number is None or not self.contains(number):
            raise LimitError(f"{name}: {_number_text(value)} is not {self.describe()}")
        return number

    def coerce(self, value: object) -> float | int | None:
        """`value` (a number, or a string in plain decimal) as the interval's kind of
        number, or None when it is not one."""
        if isinstance(value, str):
            value = parse_number(value)
        if isinstance(value, bool | np.bool_):
            return None
        if isinstance(value, int | np.integer):
            if self.integer:
                return int(value)
            try:
                return float(value)
            except OverflowError:
                return None
        if isinstance(value, float | np.floating):
            number = float(value)
            if not self.integer:
                return number
            return int(number) if math.isfinite(number) and number.is_integer() else None
        return None


NON_NEGATIVE = Interval(0.0)
POSITIVE = Interval(0.0, low_open=True)
FRACTION = Interval(0.0, 1.0)


@dataclass(frozen=True)
class Choice:
    """A setting that is one of a few names."""

    names: tuple[str, ...]

    def describe(self) -> str:
        return "one of " + ", ".join(self.names)

    def check(self, value: object, name: str) -> str:
        """`value` when it is one of the names; LimitError naming `name` otherwise."""
        if isinstance(value, str) and value in self.names:
            return value
        raise LimitError(f"{name}: {_number_text(value)} is not {self.describe()}")


@dataclass(frozen=True)
class Switch:
    """A yes/no setting: a bool, or the text `true` / `false` (as JSON and YAML write it)."""

    def describe(self) -> str:
        return "true or false"

    def check(self, value: object, name: str) -> bool:
        if isinstance(value, bool | np.bool_):
            return bool(value)
        if isinstance(value, str) and value in ("true", "false"):
            return value == "true"
        raise LimitError(f"{name}: {_number_text(value)} is not {self.describe()}")


SWITCH = Switch()


@dataclass(frozen=True)
class SizeLimit:
    """A bound on the size of a simulation, raised with an environment variable."""

    what: str  # "queries in a trace"
    env: str  # the environment variable that raises it
    default: float

    def value(self) -> float:
        raw = os.environ.get(self.env)
        if raw is None:
            return self.default
        try:
            number = float(raw)
        except ValueError:
            number = math.nan
        if not (math.isfinite(number) and number > 0):
            raise LimitError(f"{self.env}={raw!r}: expected a finite number > 0")
        return number

    def check(self, amount: float, where: str) -> None:
        """LimitError naming `where`, the amount, the bound and how to raise it, when
        `amount` (which may be inf or nan) exceeds the bound."""
        bound = self.value()
        if not amount <= bound:
            raise LimitError(
                f"{where}: {amount:.7g} {self.what} exceeds the bound of {bound:.7g} "
                f"(set {self.env} to raise it)"
            )


MAX_QUERIES = SizeLimit("queries in a trace", "T2ISIM_MAX_QUERIES", 2_000_000)
MAX_WORKERS = SizeLimit("GPU workers", "T2ISIM_MAX_WORKERS", 1024)
MAX_SIM_S = SizeLimit("simulated seconds", "T2ISIM_MAX_SIM_S", 172_800.0)
MAX_SWEEP_RUNS = SizeLimit("runs in a sweep", "T2ISIM_MAX_SWEEP_RUNS", 10_000)
MAX_SPLITS = SizeLimit("seeded splits", "T2ISIM_MAX_SPLITS", 1_000)


def seconds(value: object, name: str, *, positive: bool = False) -> float:
    """A duration in simulated seconds: finite, >= 0 (> 0 when `positive`), within MAX_SIM_S."""
    number = (POSITIVE if positive else NON_NEGATIVE).check(value, name)
    MAX_SIM_S.check(number, name)
    return float(number)
