"""``xfr explain PROBE GALLERY``: the decision and why, as numbers, a PNG figure and JSON.

``xfr explain --demo`` runs on the bundled default model with two public photos that ship
inside installed packages (scikit-image's astronaut, Eileen Collins, and matplotlib's Grace
Hopper): a negative pair (the two women) and a positive pair (the astronaut and her mirror
image), and says which pairs it used.

``xfr explain --pairs LIST --out DIR`` explains every pair of a list (LFW ``pairs.txt``, or CSV
``probe,gallery[,same]``, or a header naming ``probe, gallery, same, fold, id``): one result
per pair (``<stem>.png/.json/.npz``) and ``DIR/summary.csv``; pairs done before with the same
model and options are not computed again, a pair that fails is recorded and the run goes on
(exit status 1, "N of M pairs failed"). ``--engine ray`` runs the model passes on a Ray
cluster (``--ray-address``, ``--num-cpus``, ``--num-gpus``) and writes the same files.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from xfr.commands.arguments import add_engine_options, engine_from_args
from xfr.defaults import DEFAULT_METHOD
from xfr.errors import OptionError, OptionTypeError, OutputError
from xfr.interfaces.vocabulary import NEGATIVE, POSITIVE, is_positive, paper_strategies

#: One-line help of the command (``xfr --help``).
HELP = "explain a face-verification decision (positive or negative)"


def demo_pairs() -> list[tuple[str, Any, Any]]:
    """(description, probe, gallery) of the demo, from files inside installed packages."""
    import matplotlib.cbook
    import numpy as np
    import skimage.data

    astronaut = skimage.data.astronaut()
    hopper = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    return [
        ("astronaut (scikit-image) vs. Grace Hopper (matplotlib): two different people",
         astronaut, str(hopper)),
        ("astronaut (scikit-image) vs. the same photo mirrored: the same person",
         astronaut, np.ascontiguousarray(astronaut[:, ::-1])),
    ]


#: The explainer flags, as (flag, option name): all options of the paper's method
#: (``--method paper``); ``--generator`` and ``--target`` also of ``relevance``. A method gets
#: those among its own options (:func:`explain_options`).
PAPER_FLAGS = (("--generator", "generator"), ("--selector", "selector"), ("--target", "target"),
               ("--fill", "fill"), ("--strategies", "strategies"))
#: The perturbation baselines (paper Sec. 4), which show progress bars of their own.
BASELINES = ("minplus", "avg", "rise", "lime")
#: The built-in explainers that show a progress bar on a terminal.
WITH_PROGRESS = (*BASELINES, "corrrise")


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "explain", help=HELP,
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("probe", nargs="?", help="probe image (photo or 112x112 aligned crop)")
    p.add_argument("gallery", nargs="?", help="gallery image")
    p.add_argument("--demo", action="store_true", help="explain two bundled demo pairs")
    p.add_argument("-o", "--out", default="xfr-explanation",
                   help="output folder (default: %(default)s)")
    p.add_argument("--verifier", default="default",
                   help="registered verifier name, NAME:SOURCE (e.g. "
                        "face-transformer:/path/Backbone_VIT.pth) or model folder "
                        "(default: %(default)s, the bundled model)")
    p.add_argument("--method", default=DEFAULT_METHOD,
                   help="explainer: relevance (xfr's measured default, docs/faithfulness.md), "
                        "paper (the paper's Sec. 3), minplus, avg, rise, lime, xssab, "
                        "corrrise, bilrp "
                        "(default: %(default)s)")
    p.add_argument("--generator", default=None,
                   help="attention generator of the relevance and paper methods (default: "
                        "grad-rollout for relevance, nograd-lrp for paper)")
    p.add_argument("--selector", default=None,
                   help="selector of the paper method: metric or fixed:NAME, NAME becoming a "
                        "candidate (default: metric)")
    p.add_argument("--strategies", default=None, metavar="NAMES",
                   help="candidate mask strategies of the paper method, comma-separated, for "
                        "both decisions, e.g. oim,um,probe-only (default: "
                        f"{','.join(paper_strategies(POSITIVE))} for positive, "
                        f"{','.join(paper_strategies(NEGATIVE))} for negative decisions)")
    p.add_argument("--target", default=None,
                   help="attention target of the relevance and paper methods: auto, logit, "
                        "embedding, similarity, and for relevance decision (default: decision "
                        "for relevance, auto for paper)")
    p.add_argument("--fill", default=None,
                   help="what removed pixels become (paper method): zeros, mean, blur "
                        "(default: zeros)")
    p.add_argument("--detector", default="yunet", choices=["yunet", "dlib"],
                   help="face and landmark detector for photos (dlib: pip install 'xfr[dlib]'; "
                        "default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print the explanation summary as JSON")
    many = p.add_argument_group("many pairs (--pairs)")
    many.add_argument("--pairs", type=Path, default=None, metavar="LIST",
                      help="explain every pair of LIST: LFW pairs.txt, CALFW style or CSV "
                           "probe,gallery[,same] (labels optional; a header may name an id "
                           "column); writes OUT/<stem>.png/.json/.npz and OUT/summary.csv")
    many.add_argument("--root", type=Path, default=None, metavar="DIR",
                      help="image folder of the list (default: the list's folder)")
    many.add_argument("--format", default="auto", choices=("auto", "lfw", "calfw", "csv"),
                      help="pair-list format (default: guessed)")
    many.add_argument("--batch-size", type=int, default=32, metavar="N",
                      help="pairs per batched model call (default: %(default)s)")
    many.add_argument("--no-figures", action="store_true",
                      help="write no PNG per pair (JSON and npz only)")
    add_engine_options(many)


def summary(e: Any) -> dict[str, Any]:
    return {
        "decision": e.decision, "distance": round(e.distance, 6),
        "threshold": round(e.threshold, 6), "method": e.method, "strategy": e.strategy,
        "reason": e.selection_reason,
        "candidates": {c.name: {"score": c.score, "removed_area": round(c.removed_area, 4),
                                "distances": c.distances, "eligible": c.eligible,
                                "reason": c.reason} for c in e.candidates},
        "notes": e.notes,
    }


def report(e: Any) -> list[str]:
    """The lines ``xfr explain`` prints about one explanation (without the pair and files)."""
    rel = "<" if is_positive(e.distance, e.threshold) else ">="
    lines = [f"  decision: {e.decision} (distance {e.distance:.4f} {rel} "
             f"threshold {e.threshold:.4f})"]
    for c in e.candidates:
        mark = "  <- chosen" if c.name == e.strategy else ""
        if c.score is not None:
            lines.append(f"  {c.name:5s} score {c.score:9.4f}  RA {c.removed_area:.3f}{mark}")
        else:
            lines.append(f"  {c.name:5s} not eligible: {c.reason}")
    if e.heatmaps is None:
        why = e.selection_reason or e.notes.get("unsupported") or "the method gave none"
        lines.append(f"  no heatmap: {why}")
    elif not e.candidates:  # a baseline or similarity explainer: no mask strategies
        calls = e.notes.get("model_passes") or e.notes.get("verifier_calls")
        passes = f", {calls} model passes" if calls else ""
        lines.append(f"  heatmaps: probe and gallery ({e.method}{passes})")
    return lines


def explain_options(args: argparse.Namespace) -> dict[str, Any]:
    """The explainer options of the command line; a flag that the chosen method does not
    take is refused now, in one line (it would fail inside the explainer)."""
    given = {name: getattr(args, name) for _, name in PAPER_FLAGS
             if getattr(args, name) is not None}
    if not given:
        return given
    from xfr import registry

    explainer = registry.create("explainer", args.method)  # an unknown method: one line
    known = set(getattr(explainer, "options", {}) or {})
    refused = [flag for flag, name in PAPER_FLAGS if name in given and name not in known]
    if refused:
        takes = [flag for flag, name in PAPER_FLAGS if name in known]
        raise OptionTypeError(
            f"{', '.join(refused)} {'does' if len(refused) == 1 else 'do'} not apply to "
            f"--method {args.method}"
            + (f" (it takes {', '.join(takes)})" if takes else " (it takes none of "
               f"{', '.join(flag for flag, _ in PAPER_FLAGS)})"))
    return given


def check_output_folder(out: Path) -> Path:
    """``out`` if it is a folder or can become one, else :class:`~xfr.errors.OutputError`."""
    for parent in (out, *out.parents):
        if parent.exists():
            if not parent.is_dir():
                raise OutputError(f"-o/--out {out}: {parent} is a file, not a folder")
            break
    return out


def run_pairs(args: argparse.Namespace) -> int:
    """``xfr explain --pairs LIST``: every pair, then one line per outcome; exit status 1 when
    some pairs failed (they are in summary.csv)."""
    from xfr.batch import BatchSettings, run_batch

    if args.demo or args.probe or args.gallery:
        raise OptionError("--pairs takes no PROBE/GALLERY arguments and no --demo")
    if args.json:
        raise OptionError("--json is for one pair; --pairs writes OUT/summary.csv")
    if args.batch_size < 1:
        raise OptionError(f"--batch-size must be >= 1, got {args.batch_size}")
    if not args.pairs.is_file():
        raise FileNotFoundError(f"no such pair list: {args.pairs}")
    if args.root is not None and not args.root.is_dir():
        raise FileNotFoundError(f"no such image folder: {args.root}")
    options = explain_options(args)
    out = check_output_folder(Path(args.out))
    engine = engine_from_args(args)  # Ray missing: one line, before any model pass
    settings = BatchSettings(
        pairs=args.pairs, out=out, root=args.root, format=args.format,
        verifier=args.verifier, method=args.method, options=options, detector=args.detector,
        pairs_per_batch=args.batch_size, figures=not args.no_figures)
    result = run_batch(settings, engine)
    ok = result.total - result.failed
    print(f"{ok} of {result.total} pairs explained ({result.computed} computed, "
          f"{result.reused} done before) in {result.seconds:.1f} s; wrote {result.summary}")
    from xfr.commands.report import write_after

    write_after(out)
    if result.failed:
        print(f"{result.failed} of {result.total} pairs failed, see {result.summary}")
        return 1
    return 0


def run(args: argparse.Namespace) -> int:
    from xfr.api import explain, make_explainer

    if args.pairs is not None:
        return run_pairs(args)
    for flag, given in (("--root", args.root is not None), ("--no-figures", args.no_figures),
                        ("--engine", args.engine != "local"),
                        ("--format", args.format != "auto")):
        if given:
            raise OptionError(f"{flag} applies to --pairs LIST only")
    if args.demo:
        if args.probe or args.gallery:
            raise OptionError("--demo takes no PROBE/GALLERY arguments")
    else:
        if not args.probe or not args.gallery:
            raise OptionError("give PROBE and GALLERY images, or --demo")
        for f in (args.probe, args.gallery):
            if not Path(f).exists():
                raise FileNotFoundError(f"no such image file: {f}")
    options = explain_options(args)
    out = check_output_folder(Path(args.out))
    make_explainer(args.method, dict(options))  # every option checked before any work
    if args.demo:
        jobs = [(desc, p, g, f"demo_{i + 1}") for i, (desc, p, g) in enumerate(demo_pairs())]
    else:
        jobs = [(f"{args.probe} vs. {args.gallery}", args.probe, args.gallery, "explanation")]
    # Say what is being done (a pair takes seconds, a baseline minutes), one line per pair on
    # stderr (stdout keeps the results, e.g. --json): on a terminal always, on a pipe when
    # there are several pairs (a log then shows how far the run got; a single pair's stderr
    # stays empty or one error line). The baselines' progress bars redraw themselves, so
    # only on a terminal.
    interactive = sys.stderr.isatty()
    if interactive and args.method in WITH_PROGRESS:
        options["progress"] = True
    for k, (desc, probe, gallery, stem) in enumerate(jobs, start=1):
        if interactive or len(jobs) > 1:
            print(f"xfr: explaining pair {k}/{len(jobs)} ({args.method}): {desc} ...",
                  file=sys.stderr, flush=True)
        e = explain(probe, gallery, verifier=args.verifier, method=args.method,
                    detector=args.detector, **options)
        png, js = e.save(out, stem)
        if args.json:
            print(json.dumps({"pair": desc, **summary(e), "figure": str(png), "json": str(js),
                              "arrays": str(js.with_suffix(".npz"))}))
        else:
            print(f"pair: {desc}")
            for line in report(e):
                print(line)
            print(f"  wrote {png}, {js} and {js.with_suffix('.npz')}")
        sys.stdout.flush()
    from xfr.commands.report import write_after

    write_after(out, quiet=args.json)
    return 0
