"""``xfr sanity``: the model-randomisation sanity check of the paper's explanations.

Cascading randomisation (Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018,
Sec. 3.1): the verifier's parameters are re-drawn block by block from the top (then the
embedding stem), and at each step the paper's explainer (Correia et al., Sec. 3.1) explains
the same pairs again. Explanations that explain the model should drift to the similarity of
two unrelated pairs' maps (the chance level); see :mod:`xfr.evaluation.sanity`.

Example (10 held-out LFW pairs, one generator)::

    xfr sanity --pairs ../shared/data/lfw/pairs.txt --root ../shared/data/lfw \\
        --folds 9,10 --limit 10 --generators nograd-lrp --out reports/sanity

Writes ``OUT/sanity.json``, ``OUT/sanity.md``, ``OUT/sanity.png`` and ``OUT/command.txt``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from xfr.commands.arguments import add_engine_options, engine_from_args
from xfr.commands.arguments import csv_list as _csv_list
from xfr.commands.arguments import folds as _folds


def command_line(args: argparse.Namespace) -> str:
    """The command as typed when this process is ``xfr sanity``; otherwise (called from
    Python) an equivalent command rebuilt from ``args``."""
    argv = sys.argv[1:]
    if "sanity" in argv:
        return " ".join(shlex.quote(a) for a in ["xfr", *argv])
    parts = ["xfr", "sanity", "--pairs", str(args.pairs), "--root", str(args.root),
             "--format", args.format, "--generators", ",".join(args.generators),
             "--method", args.method, "--verifier", str(args.verifier), "--seed", str(args.seed),
             "--batch-size", str(args.batch_size), "--bootstrap", str(args.bootstrap)]
    if args.folds:
        parts += ["--folds", ",".join(str(f) for f in sorted(args.folds))]
    for flag, value in (("--limit", args.limit), ("--align-cache", args.align_cache)):
        if value is not None:
            parts += [flag, str(value)]
    parts += ["--out", str(args.out)]
    return " ".join(shlex.quote(p) for p in parts)


def add_parser(subparsers: Any) -> None:
    from xfr.data.pairs import FORMATS
    from xfr.evaluation.sanity import DEFAULT_GENERATORS

    p = subparsers.add_parser(
        "sanity", help="model-randomisation sanity check of the explanations (Adebayo et al.)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pairs", required=True, type=Path,
                   help="pair list: LFW pairs.txt, CALFW-style '<file> <label>' or CSV")
    p.add_argument("--root", required=True, type=Path, help="image folder of the pair list")
    p.add_argument("--format", default="auto", choices=FORMATS,
                   help="pair-list format (default: guessed)")
    p.add_argument("--folds", type=_folds, default=None,
                   help="1-based folds, e.g. 9,10 (default: all)")
    p.add_argument("--limit", type=int, default=None,
                   help="a seeded subset of N pairs, genuine and impostor in turn (N >= 2)")
    p.add_argument("--generators", type=_csv_list, default=DEFAULT_GENERATORS,
                   help=f"attention generators (default {','.join(DEFAULT_GENERATORS)})")
    p.add_argument("--method", default="paper",
                   help="explainer whose maps are checked: paper, relevance, or another that "
                        "takes a generator option (default: %(default)s)")
    p.add_argument("--verifier", default="default",
                   help="registered verifier name or model folder (default: bundled model)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the pair subset, the re-drawn weights and the bootstrap")
    p.add_argument("--batch-size", type=int, default=32, help="pairs per explanation call")
    p.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples")
    p.add_argument("--align-cache", type=Path, default=None,
                   help="aligned-face cache folder (default OUT/aligned)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    add_engine_options(p.add_argument_group("engine (where the explanations run)"))


def run(args: argparse.Namespace) -> int:
    from xfr.evaluation.sanity import run_sanity

    engine = engine_from_args(args)  # Ray missing: one line, before any model pass
    engine.start()  # a cluster that cannot be joined: one line, now
    result = run_sanity(
        args.pairs, args.root, args.out, format=args.format, folds=args.folds,
        limit=args.limit, generators=args.generators, verifier=args.verifier, seed=args.seed,
        method=args.method,
        batch_size=args.batch_size, n_boot=args.bootstrap, align_cache=args.align_cache,
        progress=not args.no_progress, command=command_line(args), engine=engine)
    for g, r in result["generators"].items():
        step = r["below_chance"]["final"]
        where = f"at step {step}" if step is not None else "never"
        print(f"{g}: final heatmaps drop below the chance level {where}")
    print(f"wrote sanity.json, sanity.md, sanity.png, command.txt to {args.out}")
    return 0
