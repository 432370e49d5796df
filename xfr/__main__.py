"""``python -m xfr`` is the ``xfr`` command (:mod:`xfr.cli`)."""

import sys

from xfr.cli import main

sys.exit(main())
