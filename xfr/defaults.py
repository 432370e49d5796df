"""xfr's own defaults that are not the paper's terms (those live in
:mod:`xfr.interfaces.vocabulary`), defined once for the API, the CLI and the web app."""

from __future__ import annotations

#: The explainer used when none is named: the pair's relevance maps, chosen by the deletion,
#: insertion and randomisation measurements of docs/faithfulness.md. The paper's explainer is
#: ``"paper"`` (Sec. 3), reproduced rule for rule.
DEFAULT_METHOD = "relevance"

__all__ = ["DEFAULT_METHOD"]
