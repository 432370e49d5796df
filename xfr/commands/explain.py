"""``xfr explain PROBE GALLERY``: the decision and why, as numbers, a PNG figure and JSON.

``xfr explain --demo`` runs on the bundled default model with two public photos that ship
inside installed packages (scikit-image's astronaut, Eileen Collins, and matplotlib's Grace
Hopper): a negative pair (the two women) and a positive pair (the astronaut and her mirror
image), and says which pairs it used.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


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


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "explain", help="explain a face-verification decision (positive or negative)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("probe", nargs="?", help="probe image (photo or 112x112 aligned crop)")
    p.add_argument("gallery", nargs="?", help="gallery image")
    p.add_argument("--demo", action="store_true", help="explain two bundled demo pairs")
    p.add_argument("-o", "--out", default="xfr-explanation", help="output folder")
    p.add_argument("--verifier", default="default",
                   help="registered verifier name or model folder (default: bundled model)")
    p.add_argument("--method", default="paper", help="explainer: paper, minplus, avg, rise, lime")
    p.add_argument("--generator", default=None, help="attention generator (paper method)")
    p.add_argument("--selector", default=None, help="selector: metric or fixed:NAME")
    p.add_argument("--target", default=None,
                   help="attention target: auto, logit, embedding, similarity")
    p.add_argument("--fill", default=None, help="masking fill: zeros, mean, blur")
    p.add_argument("--detector", default="yunet", choices=["yunet", "dlib"],
                   help="face and landmark detector for photos (dlib: pip install 'xfr[dlib]')")
    p.add_argument("--json", action="store_true", help="print the explanation summary as JSON")


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


def run(args: argparse.Namespace) -> int:
    from xfr.api import explain

    if args.demo:
        if args.probe or args.gallery:
            raise ValueError("--demo takes no PROBE/GALLERY arguments")
        jobs = [(desc, p, g, f"demo_{i + 1}") for i, (desc, p, g) in enumerate(demo_pairs())]
    else:
        if not args.probe or not args.gallery:
            raise ValueError("give PROBE and GALLERY images, or --demo")
        for f in (args.probe, args.gallery):
            if not Path(f).exists():
                raise FileNotFoundError(f"no such image file: {f}")
        jobs = [(f"{args.probe} vs. {args.gallery}", args.probe, args.gallery, "explanation")]
    options = {k: v for k, v in (("generator", args.generator), ("selector", args.selector),
                                 ("target", args.target), ("fill", args.fill)) if v is not None}
    out = Path(args.out)
    for desc, probe, gallery, stem in jobs:
        e = explain(probe, gallery, verifier=args.verifier, method=args.method,
                    detector=args.detector, **options)
        png, js = e.save(out, stem)
        if args.json:
            print(json.dumps({"pair": desc, **summary(e), "figure": str(png), "json": str(js)}))
        else:
            print(f"pair: {desc}")
            rel = "<" if e.distance < e.threshold else ">="
            print(f"  decision: {e.decision} (distance {e.distance:.4f} {rel} "
                  f"threshold {e.threshold:.4f})")
            for c in e.candidates:
                mark = "  <- chosen" if c.name == e.strategy else ""
                if c.score is not None:
                    print(f"  {c.name:5s} score {c.score:9.4f}  RA {c.removed_area:.3f}{mark}")
                else:
                    print(f"  {c.name:5s} not eligible: {c.reason}")
            if e.strategy is None:
                print(f"  no heatmap: {e.selection_reason or e.notes.get('unsupported')}")
            print(f"  wrote {png} and {js}")
    sys.stdout.flush()
    return 0
