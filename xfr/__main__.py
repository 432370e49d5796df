"""``python -m xfr`` is the ``xfr`` command (:mod:`xfr.cli`)."""

from xfr.cli import console

console()
