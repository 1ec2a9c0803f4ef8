"""How every `t2isim` command ends: exit 0, or one line on stderr and a documented exit code.

`OneLineErrors` is the command group class of the `t2isim` app. It runs a command with
click's standalone mode off and turns what escapes into one line `error: ...` on stderr:

| what | exit code |
|---|---|
| a usage error (unknown option, bad integer, bad choice, missing argument) | 2 |
| `InputError` (bad input file, spec, option value, output path), `OSError` naming a file | 2 |
| `RunFailure` (a failed sweep run, code changed mid-sweep), `OSError` naming no file | 1 |
| SIGINT / SIGTERM | 130 / 143 |

Anything else is a bug and keeps its traceback. Warnings raised while a command runs are held
back: dropped when it fails (the error line is the only output), shown one line each when it
succeeds; a deprecation warning only where this project's code raised it. SIGTERM is turned
into the same exception as SIGINT, so `finally` blocks and context managers run: staging
outputs are deleted and worker processes stopped.
"""

from __future__ import annotations

import contextlib
import errno
import signal
import sys
import warnings
from collections.abc import Iterator
from typing import Any

import typer
from typer.core import TyperGroup

from simulator.errors import InputError, RunFailure, one_line

EXIT_INPUT = 2
EXIT_FAILED = 1
HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)
OWN_MODULES = r"(simulator|policies|routers|experiments|profiler|serving)(\.|$)"


def _fail(message: str, code: int) -> None:
    sys.stderr.write(f"error: {one_line(message)}\n")
    sys.stderr.flush()
    sys.exit(code)


def input_error_message(exc: BaseException) -> str | None:
    """The one-line message of an input error (InputError, an OSError naming a file, text that
    is not UTF-8), or None when `exc` is none of these."""
    if isinstance(exc, InputError):
        return one_line(str(exc)) or type(exc).__name__
    if isinstance(exc, UnicodeDecodeError):
        return f"input is not UTF-8 text ({exc.reason} at byte {exc.start})"
    if isinstance(exc, OSError) and exc.filename is not None and exc.errno != errno.EPIPE:
        return one_line(f"{exc.filename}: {exc.strerror or exc}")
    return None


@contextlib.contextmanager
def input_errors() -> Iterator[None]:
    """Input errors raised inside -> one line on stderr, exit 2 (as `OneLineErrors` does for
    whatever escapes a command; for code that runs outside the group, e.g. a sub-app)."""
    try:
        yield
    except (InputError, UnicodeDecodeError, OSError) as exc:
        message = input_error_message(exc)
        if message is None:
            raise
        _fail(message, EXIT_INPUT)


class OneLineErrors(TyperGroup):
    """The root command group: one-line errors and exit codes (see the module docstring)."""

    def main(self, args: Any = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        received: list[int] = []
        with _signals_interrupt(received), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")
            for category in (DeprecationWarning, PendingDeprecationWarning):
                # a library's deprecations are its own (Ray's pydantic models): not the user's
                warnings.filterwarnings("ignore", category=category)
                warnings.filterwarnings("default", category=category, module=OWN_MODULES)
            try:
                code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
            except typer.TyperException as exc:  # click's exceptions, as typer vendors them
                if type(exc).__name__ == "NoArgsIsHelpError":  # a bare group: its help
                    sys.stdout.write(exc.ctx.get_help() + "\n")
                    sys.exit(0)
                _fail(_usage_message(exc, sys.argv[1:] if args is None else list(args)),
                      EXIT_INPUT)
            except typer.Abort:
                received.append(signal.SIGINT)
                code = 130
            except RunFailure as exc:
                _fail(str(exc), EXIT_FAILED)
            except (InputError, UnicodeDecodeError, OSError) as exc:
                message = input_error_message(exc)
                if message is not None:
                    _fail(message, EXIT_INPUT)
                if isinstance(exc, OSError) and exc.errno == errno.EPIPE:
                    sys.exit(EXIT_FAILED)
                if isinstance(exc, OSError):  # the machine, not the input (a full disk)
                    _fail(str(exc) or type(exc).__name__, EXIT_FAILED)
                raise
        if received or code == 130:
            number = received[0] if received else signal.SIGINT
            _fail(f"interrupted by {signal.Signals(number).name}", 128 + number)
        for warning in _unique(caught) if not code else ():
            sys.stderr.write(f"warning: {one_line(str(warning.message))}\n")
        sys.exit(code or 0)


def _usage_message(exc: typer.TyperException, args: list[str]) -> str:
    """click's message of a usage error, with the value given when it does not show it
    (`Invalid value for '--workers': ... an integer (got 'abc')`)."""
    message = exc.format_message().replace("Value error, ", "")
    param = getattr(exc, "param", None)
    for opt in getattr(param, "opts", ()):
        for k, arg in enumerate(args):
            given = None
            if arg == opt and k + 1 < len(args):
                given = args[k + 1]
            elif arg.startswith(opt + "="):
                given = arg[len(opt) + 1 :]
            if given is not None and repr(given) not in message:
                return f"{message} (got {given!r})"
    return message


def _unique(caught: list[warnings.WarningMessage]) -> list[warnings.WarningMessage]:
    seen, unique = set(), []
    for warning in caught:
        key = (warning.category, str(warning.message))
        if key not in seen:
            seen.add(key)
            unique.append(warning)
    return unique


@contextlib.contextmanager
def _signals_interrupt(received: list[int]) -> Iterator[None]:
    """SIGTERM (and SIGINT) raise KeyboardInterrupt in the main thread while the command runs;
    the numbers received are appended to `received`. A no-op outside the main thread."""

    def handle(number: int, frame: object) -> None:
        received.append(number)
        raise KeyboardInterrupt

    previous: dict[int, Any] = {}
    with contextlib.suppress(ValueError):  # not the main thread (signal handlers live there)
        for number in HANDLED_SIGNALS:
            previous[number] = signal.signal(number, handle)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
