"""Errors a user caused: a bad file, folder or argument (``InputError``), as opposed to our bugs.

The message names the file or argument and what is wrong with it. The ``anomalib-fastflow`` command
prints it in one line and exits 2, as it does for a missing extra (``extras.MissingExtraError``);
from Python it is a ``ValueError`` like any other bad argument. ``docs/errors.md`` lists them.
"""


class InputError(ValueError):
    """A file, folder or argument the user gave cannot be used; the message names it and why."""


class MissingInputError(InputError, FileNotFoundError):
    """A file or folder the user named does not exist (also a ``FileNotFoundError``)."""


def require_at_least(name: str, value: float, minimum: float, what: str) -> None:
    """Raise ``InputError`` naming ``name`` when ``value`` is below ``minimum``.

    Args:
        name: The argument as the user wrote it, e.g. ``input_size``.
        value: Its value.
        minimum: Its smallest valid value.
        what: What it sets, for the message, e.g. ``the network's input side in pixels``.
    """
    if value < minimum:
        msg = f"{name}={value}: {what} must be at least {minimum}."
        raise InputError(msg)
