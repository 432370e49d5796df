"""Argument types shared by the commands (``argparse`` ``type=`` callables)."""

from __future__ import annotations

import argparse


def csv_list(text: str) -> tuple[str, ...]:
    """``"a,b"`` -> ``("a", "b")``; an empty list is refused."""
    items = tuple(x.strip() for x in text.split(",") if x.strip())
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list")
    return items


def folds(text: str) -> set[int]:
    """``"9,10"`` -> ``{9, 10}``: 1-based LFW folds."""
    try:
        chosen = {int(x) for x in text.split(",") if x.strip()}
    except ValueError:
        raise argparse.ArgumentTypeError(f"folds must be integers like 9,10: {text!r}") from None
    if not chosen or min(chosen) < 1:
        raise argparse.ArgumentTypeError(f"folds are 1-based integers like 9,10, got {text!r}")
    return chosen
