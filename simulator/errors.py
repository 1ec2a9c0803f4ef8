"""The base classes of the errors a command reports in one line (anything else is a bug).

`InputError`: invalid user input (bad bundle, trace, config, name, output path); the CLI
prints one line and exits with code 2. `RunFailure`: valid input whose work could not finish
(a sweep run that failed or ran other code than planned); one line, exit code 1.
"""


class InputError(ValueError):
    """Invalid user input; the message names the file/line/field or the unknown name."""


class RunFailure(RuntimeError):
    """Work that could not finish for a reason other than the input; the message says why."""


MAX_ERROR_CHARS = 600  # an error line echoes input (a header, a value): a 1 MB line is no use


def one_line(message: str, limit: int = MAX_ERROR_CHARS) -> str:
    """`message` with its whitespace runs (newlines included) collapsed to single spaces; past
    `limit` characters, its middle is left out (the start names the input, the end what was
    expected)."""
    line = " ".join(message.split())
    if len(line) <= limit:
        return line
    head, tail = (2 * limit) // 3, limit // 3
    return f"{line[:head]} … ({len(line) - head - tail:,} characters left out) … {line[-tail:]}"
