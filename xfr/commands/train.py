"""``xfr train``: distil a face ViT from a teacher verifier with the honest LFW protocol.

Training uses LFW identities outside ``--eval-folds`` (plus any ``--extra`` folders of faces,
e.g. FairFace), evaluates on the held-out folds, and writes ``<out>/model`` (safetensors +
config.json with the provenance) and resumable checkpoints in ``<out>/run``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

#: One-line help of the command (``xfr --help``).
HELP = "train a face ViT by distillation (resumable)"


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("train", help=HELP,
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lfw",
                   help="LFW root with pairs.txt (default: $XFR_LFW or ../shared/data/lfw)")
    p.add_argument("--extra", action="append", default=[],
                   help="extra folder of faces without identities (repeatable), e.g. FairFace")
    p.add_argument("--extra-limit", type=int, default=None,
                   help="use a seeded random subset of this many images of each --extra folder")
    p.add_argument("--out", required=True, help="output folder (model/ and run/)")
    p.add_argument("--cache", default=None, help="cache folder (default: <out>/cache)")
    p.add_argument("--eval-folds", default="9,10", help="held-out LFW folds (default 9,10)")
    p.add_argument("--teacher", default="sface", help="teacher verifier (registered name)")
    p.add_argument("--student", default="face-vit", help="student verifier (registered name)")
    p.add_argument("--arch", default=None,
                   help="JSON architecture options of the student (default: the shipped model's)")
    p.add_argument("--epochs", type=float, default=10.0)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--warmup-steps", type=int, default=300)
    p.add_argument("--cosface-weight", type=float, default=0.05,
                   help="weight of the CosFace identity loss (0: distillation only)")
    p.add_argument("--eval-every", type=int, default=500, help="evaluate every N steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--max-minutes", type=float, default=None,
                   help="stop after this long (resume later by running the same command)")
    p.add_argument("--workers", type=int, default=2, help="processes for face alignment")
    p.add_argument("--init", default=None, metavar="MODEL_DIR",
                   help="start from a saved model's weights (same architecture and held-out"
                        " folds), e.g. a second stage on top of the shipped default")
    p.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    import torch

    from xfr import registry
    from xfr.data.lfw import default_lfw_root
    from xfr.training.recipe import run_default_recipe

    lfw = Path(args.lfw) if args.lfw else default_lfw_root()
    if lfw is None or not (lfw / "pairs.txt").exists():
        raise FileNotFoundError("LFW not found: pass --lfw ROOT (the folder holding pairs.txt)")
    for folder in args.extra:
        if not Path(folder).is_dir():
            raise FileNotFoundError(f"no such folder: {folder}")
    if args.init and not (Path(args.init) / "config.json").exists():
        raise FileNotFoundError(f"--init: not a model folder (no config.json): {args.init}")
    folds = [int(f) for f in args.eval_folds.split(",") if f.strip()]
    teacher = registry.create("verifier", args.teacher, flip=False)

    def teacher_embed(x: Any) -> Any:
        return teacher.embed(torch.from_numpy(x)).numpy()

    def student_factory(**arch: Any) -> Any:
        return registry.create("verifier", args.student, **arch)

    arch = json.loads(args.arch) if args.arch else None
    out = Path(args.out)
    result = run_default_recipe(
        student_factory=student_factory, teacher_embed=teacher_embed, teacher_name=args.teacher,
        lfw_root=lfw, extra_folders=args.extra, out=out,
        cache=args.cache or out / "cache", eval_folds=folds, architecture=arch,
        train_config={"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
                      "seed": args.seed, "threads": args.threads,
                      "warmup_steps": args.warmup_steps, "eval_every_steps": args.eval_every,
                      "cosface_weight": args.cosface_weight},
        max_seconds=args.max_minutes * 60 if args.max_minutes else None,
        progress=not args.no_progress, workers=args.workers, extra_limit=args.extra_limit,
        init_from=args.init)
    print(json.dumps(result, indent=2))
    return 0
