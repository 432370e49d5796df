"""Exceptions that describe a problem with the user's input or setup, not a bug in xfr.

The command line (:mod:`xfr.cli`) prints these as one line ``xfr: error: ...`` and exits with
status 2, without a traceback unless ``--debug`` is given. So do ``ValueError``,
``FileNotFoundError`` and ``LookupError``; :class:`UserError` is for the other cases.

The registry's errors (:mod:`xfr.registry`) also derive from the standard exception a caller
would expect (``ValueError``, ``KeyError``/``LookupError``), so ``except KeyError`` keeps
working.
"""

from __future__ import annotations

__all__ = [
    "DuplicateNameError",
    "PluginError",
    "UnknownKindError",
    "UnknownNameError",
    "UserError",
]


class UserError(Exception):
    """A problem the user can fix (bad argument, missing file, misconfigured plugin)."""


class PluginError(UserError):
    """A plugin could not be registered (unknown hook, invalid hook result, name taken)."""


class UnknownKindError(UserError, ValueError):
    """The registry has no kind of that name; the message lists the kinds."""


class UnknownNameError(UserError, KeyError):
    """No plugin provides that name for that kind; the message lists the known names."""

    def __str__(self) -> str:
        # KeyError's own __str__ would print the message as a quoted repr.
        return str(self.args[0]) if self.args else ""


class DuplicateNameError(UserError, LookupError):
    """Two plugins provide the same name for the same kind; the message names both packages."""
