"""``xfr evaluate``: the paper's evaluation (Sec. 4: Table 1, Fig. 2) on any model and pair list.

Verification accuracy (10-fold threshold selection), Table 1 (mean SM+/SM- per mask strategy
and attention generator, bootstrap 95 % CIs) and deletion/insertion curves with their areas, for
the paper's explainer (OIM heatmaps), the raw attention maps, the baselines and three reference
orders that know nothing about the model: random (two independent random maps per pair),
random-shared (one random map per pair on both faces, as the paper's heatmap is used) and
center-blob (the same centred Gaussian on every face).

Each curve is reported as a rate (recall / TNR) and as the continuous mean normalised distance
to the unperturbed pair, (d_k - d_0) / threshold, each with the paired difference of every
method's per-pair area to every reference (bootstrap 95 % CI) and a verdict in words.
Curve labels name the configuration that ran (paper-<generator>-oim is the fixed OIM selector;
--option paper.selector=metric gives paper-<generator>-metric); command.txt lists each label's
full configuration.

Example (the default model's held-out LFW folds)::

    xfr evaluate --pairs ../shared/data/lfw/pairs.txt --root ../shared/data/lfw \\
        --folds 9,10 --methods paper,attention,random,random-shared,center-blob,minplus,rise \\
        --baseline-limit 50 --steps 50 --out reports/lfw

Results are cached per pair and method under ``OUT/cache`` (or ``--cache``): an interrupted run
resumes, and ``--shard i/k`` processes (1-based ``i``) can share the work; a final run without
``--shard`` computes whatever is missing and writes the report.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from xfr.commands.arguments import add_engine_options, engine_from_args
from xfr.commands.arguments import csv_list as _csv_list
from xfr.commands.arguments import folds as _folds


def _fractions(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"fractions must be numbers like 0,0.1,...,1: "
                                         f"{text!r}") from None


def curve_fractions(steps: str | None, fractions: tuple[float, ...] | None) -> tuple[float, ...]:
    """The curve fractions from ``--steps N`` (``linspace(0, 1, N + 1)``) or ``--fractions``
    (explicit values); default 10 steps. Both together, or a bad ``--steps``, is a
    :class:`~xfr.errors.UserError` (one line, exit status 2)."""
    from xfr.errors import UserError
    from xfr.evaluation.deletion import DEFAULT_STEPS, step_fractions

    if steps is not None and fractions is not None:
        raise UserError("give either --steps N (equal steps) or --fractions F0,F1,... "
                        "(explicit values), not both")
    if fractions is not None:
        return fractions
    if steps is None:
        return step_fractions(DEFAULT_STEPS)
    try:
        n = int(steps)
    except ValueError:
        hint = " (for explicit values use --fractions)" if "," in steps or "." in steps else ""
        raise UserError(f"--steps takes a number of equal curve steps such as 50, got "
                        f"{steps!r}{hint}") from None
    if n < 1:
        raise UserError(f"--steps must be >= 1, got {n}")
    return step_fractions(n)


def parse_options(items: list[str]) -> dict[str, dict[str, Any]]:
    """``["rise.n_masks=2000", "paper.fill=mean"]`` -> ``{"rise": {"n_masks": 2000}, ...}``;
    values are read as JSON when they parse, else kept as strings."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        head, sep, value = item.partition("=")
        method, dot, key = head.partition(".")
        if not sep or not dot or not method or not key:
            raise ValueError(f"--option must look like METHOD.KEY=VALUE, got {item!r}")
        try:
            parsed: Any = json.loads(value)
        except json.JSONDecodeError:
            parsed = value
        out.setdefault(method, {})[key] = parsed
    return out


def parse_method_limits(items: list[str]) -> dict[str, int]:
    """``["rise=20", "lime=40"]`` -> ``{"rise": 20, "lime": 40}``."""
    out: dict[str, int] = {}
    for item in items:
        method, sep, value = item.partition("=")
        if not sep or not method or not value.strip().isdigit():
            raise ValueError(f"--method-limit must look like METHOD=N, got {item!r}")
        out[method.strip()] = int(value)
    return out


def command_line(args: argparse.Namespace) -> str:
    """The command as typed (``sys.argv``) when this process is ``xfr evaluate``; otherwise
    (called from Python) an equivalent command rebuilt from ``args``."""
    argv = sys.argv[1:]
    if "evaluate" in argv:
        return " ".join(shlex.quote(a) for a in ["xfr", *argv])
    parts = ["xfr", "evaluate", "--pairs", str(args.pairs), "--root", str(args.root),
             "--out", str(args.out), "--format", args.format, "--verifier", str(args.verifier),
             "--methods", ",".join(args.methods), "--generators", ",".join(args.generators),
             "--seed", str(args.seed), "--baseline-limit", str(args.baseline_limit)]
    if args.folds:
        parts += ["--folds", ",".join(str(f) for f in sorted(args.folds))]
    for flag, value in (("--limit", args.limit), ("--shard", args.shard),
                        ("--cache", args.cache), ("--align-cache", args.align_cache)):
        if value is not None:
            parts += [flag, str(value)]
    for item in getattr(args, "method_limit", []):
        parts += ["--method-limit", item]
    if tuple(args.curves) != ("deletion", "insertion"):
        parts += ["--curves", ",".join(args.curves)]
    if args.steps is not None:
        parts += ["--steps", str(args.steps)]
    if args.fractions is not None:
        parts += ["--fractions", ",".join(str(f) for f in args.fractions)]
    for item in args.option:
        parts += ["--option", item]
    if args.report_only:
        parts.append("--report-only")
    return " ".join(shlex.quote(p) for p in parts)


def add_parser(subparsers: Any) -> None:
    from xfr.evaluation.runner import DEFAULT_GENERATORS, DEFAULT_METHODS

    p = subparsers.add_parser(
        "evaluate", help="the paper's evaluation: accuracy, Table 1, deletion/insertion curves",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pairs", required=True, type=Path,
                   help="pair list: LFW pairs.txt, CALFW-style '<file> <label>' or CSV")
    p.add_argument("--root", required=True, type=Path, help="image folder of the pair list")
    p.add_argument("--format", default="auto", choices=("auto", "lfw", "calfw", "csv"),
                   help="pair-list format (default: guessed)")
    p.add_argument("--folds", type=_folds, default=None,
                   help="1-based folds to evaluate, e.g. 9,10 (default: all)")
    p.add_argument("--verifier", default="default",
                   help="registered verifier name or model folder (default: bundled model)")
    p.add_argument("--methods", type=_csv_list, default=DEFAULT_METHODS,
                   help="paper, attention, the references random, random-shared, "
                        "center-blob, and/or explainer plugins (minplus, rise, lime, avg); "
                        f"default {','.join(DEFAULT_METHODS)}")
    p.add_argument("--generators", type=_csv_list, default=DEFAULT_GENERATORS,
                   help=f"attention generators (default {','.join(DEFAULT_GENERATORS)})")
    p.add_argument("--limit", type=int, default=None,
                   help="evaluate only the first N pairs, genuine and impostor in turn")
    p.add_argument("--baseline-limit", type=int, default=100,
                   help="true positives and true negatives (each) the baseline explainers run "
                        "on, drawn at random with --seed (default 100; 0 = all)")
    p.add_argument("--method-limit", action="append", default=[], metavar="METHOD=N",
                   help="a smaller limit for one baseline explainer: the first N true "
                        "positives and true negatives of the --baseline-limit draw "
                        "(repeatable; a later, larger limit extends the cached run)")
    p.add_argument("--shard", default=None, help="i/k: do only this share of the pairs")
    p.add_argument("--seed", type=int, default=0, help="seed of random choices (default 0)")
    p.add_argument("--steps", default=None, metavar="N",
                   help="N equal curve steps, fractions linspace(0, 1, N+1) (default 10: "
                        "0, 0.1, ..., 1)")
    p.add_argument("--fractions", type=_fractions, default=None, metavar="F0,F1,...",
                   help="explicit curve fractions instead of --steps, e.g. 0,0.05,0.1,0.2,1")
    p.add_argument("--curves", type=_csv_list, default=("deletion", "insertion"),
                   help="deletion and/or insertion (default both)")
    p.add_argument("--option", action="append", default=[], metavar="METHOD.KEY=VALUE",
                   help="explainer option, e.g. rise.n_masks=2000 (repeatable)")
    p.add_argument("--batch-size", type=int, default=32, help="pairs per explanation batch")
    p.add_argument("--cache", type=Path, default=None,
                   help="results cache folder (default OUT/cache)")
    p.add_argument("--align-cache", type=Path, default=None,
                   help="aligned-face cache folder (default CACHE/aligned)")
    p.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples")
    p.add_argument("--report-only", action="store_true",
                   help="compute nothing: write the report from what the cache holds")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    add_engine_options(p.add_argument_group("engine (where the explanations run)"))


def run(args: argparse.Namespace) -> int:
    from xfr.evaluation.report import write_report
    from xfr.evaluation.runner import EvalSettings, Evaluation, parse_shard

    if not args.pairs.is_file():
        raise FileNotFoundError(f"no such pair list: {args.pairs}")
    if not args.root.is_dir():
        raise FileNotFoundError(f"no such image folder: {args.root}")
    if args.baseline_limit < 0:
        raise ValueError(f"--baseline-limit must be >= 0, got {args.baseline_limit}")
    fractions = curve_fractions(args.steps, args.fractions)
    engine = engine_from_args(args)  # Ray missing: one line, before any model pass
    engine.start()  # a cluster that cannot be joined: one line, now
    command = command_line(args)
    settings = EvalSettings(
        pairs=args.pairs, root=args.root, out=args.out, format=args.format, folds=args.folds,
        verifier=args.verifier, methods=args.methods, generators=args.generators,
        limit=args.limit, shard=parse_shard(args.shard) if args.shard else None, seed=args.seed,
        fractions=fractions, curves=args.curves,
        baseline_limit=args.baseline_limit or None, batch_size=args.batch_size,
        method_limits=parse_method_limits(args.method_limit),
        options=parse_options(args.option), cache=args.cache, align_cache=args.align_cache,
        n_boot=args.bootstrap, progress=not args.no_progress, command=command,
        report_only=args.report_only, engine=engine)
    result = Evaluation(settings).run()
    if result is None:
        i, k = settings.shard or (1, 1)
        print(f"shard {i}/{k} done; run again without --shard to compute what is missing "
              "and write the report")
        return 0
    files = write_report(result, args.out)
    acc = result["accuracy"].get("kfold", {})
    if "mean" in acc:
        print(f"accuracy (10-fold): {100 * acc['mean']:.2f} %")
    print(f"wrote {len(files)} files to {args.out}")
    from xfr.commands.report import write_after

    write_after(args.out)
    return 0
