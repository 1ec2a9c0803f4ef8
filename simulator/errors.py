"""The base classes of the errors a command reports in one line (anything else is a bug).

`InputError`: invalid user input (bad bundle, trace, config, name, output path); the CLI
prints one line and exits with code 2. `RunFailure`: valid input whose work could not finish
(a sweep run that failed or ran other code than planned); one line, exit code 1.
"""


class InputError(ValueError):
    """Invalid user input; the message names the file/line/field or the unknown name."""


class RunFailure(RuntimeError):
    """Work that could not finish for a reason other than the input; the message says why."""
