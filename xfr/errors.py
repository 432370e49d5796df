"""Exceptions that describe a problem with the user's input or setup, not a bug in xfr.

The command line (:mod:`xfr.cli`) prints these as one line ``xfr: error: ...`` and exits with
status 2, without a traceback unless ``--debug`` is given. So do ``ValueError``,
``FileNotFoundError`` and ``LookupError``; :class:`UserError` is for the other cases.

Every class below also derives from the standard exception a caller would expect
(``ValueError``, ``TypeError``, ``KeyError``/``LookupError``, ``ImportError``, ``OSError``), so
``except ValueError`` and friends keep working:

==============================  ===================  =============================================
class                           also a               raised for
==============================  ===================  =============================================
:class:`OptionError`            ``ValueError``       a bad option value (``pairs_per_batch=0``,
                                                     ``strategies={"positive": "xx"}``, ...)
:class:`OptionTypeError`        ``TypeError``        an option of the wrong type, an unknown
                                                     option, or options that do not go together
                                                     (``verifier=None``, a black-box verifier
                                                     with the paper's method)
:class:`InputError`             ``ValueError``       an image or pair list that cannot be read
                                                     (corrupt, binary, too large, ambiguous
                                                     values), face tensors that break the
                                                     verifier contract (wrong shape, NaN,
                                                     outside 0..255); ``xfr.align.ImageError``
                                                     and ``NoFaceError`` are subclasses
:class:`InputTypeError`         ``TypeError``        face images that are not a tensor of
                                                     numbers (an :class:`InputError` too)
:class:`ModelError`             ``ValueError``       a model folder or weights file that cannot
                                                     be loaded (bad ``config.json``, bad
                                                     threshold, corrupt or unfitting weights)
:class:`MissingDependencyError` ``ImportError``      an optional extra that is not installed
:class:`OutputError`            ``OSError``          an output path that cannot be written
:class:`PluginOutputError`      ``ValueError``       a plugin returned something that breaks its
                                                     contract (the message names the plugin)
:class:`PluginError`            --                   a plugin could not be registered
==============================  ===================  =============================================

The registry's errors (:mod:`xfr.registry`) follow the same rule.

:class:`InputWarning` is the warning category of input that was converted with a guess (a float
image in 0..1, several faces in one photo); the command line prints it as one line
``xfr: warning: ...``.
"""

from __future__ import annotations

__all__ = [
    "DuplicateNameError",
    "InputError",
    "InputTypeError",
    "InputWarning",
    "MissingDependencyError",
    "ModelError",
    "OptionError",
    "OptionTypeError",
    "OutputError",
    "PluginError",
    "PluginOutputError",
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


class OptionError(UserError, ValueError):
    """An option has a value that cannot work; the message names the option and the value."""


class OptionTypeError(UserError, TypeError):
    """An option of the wrong type, an unknown option, or options that do not go together."""


class InputError(UserError, ValueError):
    """An input (image, pair list) that cannot be read or converted unambiguously."""


class InputTypeError(InputError, TypeError):
    """Face images that are not a tensor of numbers (:func:`xfr.interfaces.check_faces`); an
    :class:`InputError` (so a ``ValueError``) and a ``TypeError``."""


class ModelError(UserError, ValueError):
    """A model folder or weights file that cannot be loaded; the message names the file."""


class MissingDependencyError(UserError, ImportError):
    """An optional dependency is not installed; the message says how to install it."""


class OutputError(UserError, OSError):
    """An output path that cannot be written (e.g. ``-o`` names an existing file)."""


class PluginOutputError(UserError, ValueError):
    """A plugin returned something that breaks its contract; the message names the plugin
    (kind, name, package) and what is wrong."""


class InputWarning(UserWarning):
    """Input converted with a documented guess (see :func:`xfr.align.load_image`), or a
    choice made for the user (the largest of several faces)."""
