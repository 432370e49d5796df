"""Argument types shared by the commands (``argparse`` ``type=`` callables)."""

from __future__ import annotations

import argparse
from typing import Any


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


def add_engine_options(p: argparse.ArgumentParser) -> None:
    """``--engine {local,ray}`` and the Ray options (README, "Many pairs")."""
    p.add_argument("--engine", default="local", choices=("local", "ray"),
                   help="where the model passes run: this process, or a Ray cluster "
                        "(pip install 'xfr[ray]') (default: %(default)s)")
    p.add_argument("--ray-address", default=None, metavar="ADDRESS",
                   help="Ray cluster to join, e.g. 10.0.0.1:6379 (default: $RAY_ADDRESS, "
                        "else a local cluster is started)")
    p.add_argument("--num-cpus", type=float, default=1, metavar="N",
                   help="CPUs per Ray worker, and its PyTorch threads unless --threads "
                        "is given (default: %(default)s)")
    p.add_argument("--num-gpus", type=float, default=0, metavar="N",
                   help="GPUs per Ray worker; > 0 runs the model on the worker's GPU "
                        "(default: %(default)s)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="Ray workers (default: as many as the cluster's CPUs or GPUs allow)")


def engine_from_args(args: argparse.Namespace) -> Any:
    """The engine of the command line (:func:`xfr.engines.make_engine`); checks that Ray is
    installed when it is asked for, before anything is loaded."""
    from xfr.engines import make_engine

    return make_engine(args.engine, address=args.ray_address, num_cpus=args.num_cpus,
                       num_gpus=args.num_gpus, workers=args.workers,
                       threads=getattr(args, "threads", None))
