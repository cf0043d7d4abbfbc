"""The errors a user can cause, as opposed to bugs.

Every layer raises `HidiffError` (or a subclass) for bad input, bad packages or an environment
that cannot do what was asked. The `hidiff` command prints such an error as one line and exits
with code 2; anything else is a bug and keeps its traceback.
"""


class HidiffError(Exception):
    """A problem the user can fix: the message says what and, where it helps, how.

    The message is one line whatever it quotes: a header value with a line break in it (a
    hostile UID or description) is joined onto the line, so the CLI's one line stays one."""

    def __init__(self, message: object = "", *args: object) -> None:
        super().__init__(" ".join(str(message).split()), *args)


class InputError(HidiffError):
    """An input image, folder or argument is unusable."""


class PackageError(HidiffError):
    """A model package is corrupt, tampered with, or of an unknown format."""


class MissingDependencyError(HidiffError):
    """An optional part of the distribution is needed but its extra is not installed."""


class DiskFullError(HidiffError):
    """An output could not be written for want of space; nothing partial was left behind."""
