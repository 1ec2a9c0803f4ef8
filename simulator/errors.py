"""The one base class of every user-input error (bad bundle, trace, config, name).

The CLI turns these into a one-line message and exit code 2; anything else is a bug.
"""


class InputError(ValueError):
    """Invalid user input; the message names the file/line/field or the unknown name."""
