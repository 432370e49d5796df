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

from xfr.commands.arguments import folds

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
    p.add_argument("--eval-folds", default="9,10", type=folds,
                   help="LFW folds whose pairs are reported, never trained on")
    p.add_argument("--calibration-folds", default="7,8", type=folds,
                   help="LFW folds whose pairs choose the threshold, never trained on nor"
                        " reported")
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
    for flag, default, text in (
            ("--rotate", 10.0, "random rotation of a training view, degrees"),
            ("--scale", 0.1, "random scale of a training view (1 +- this)"),
            ("--jitter", 0.2, "brightness and contrast jitter (saturation, gains: half)"),
            ("--grayscale", 0.2, "share of training views turned grayscale"),
            ("--blur", 0.15, "share of training views blurred"),
            ("--jpeg", 0.15, "share of training views re-compressed as JPEG")):
        p.add_argument(flag, type=float, default=default, help=text)
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                   help="bf16: forward passes under bfloat16 autocast, about 1.5x faster on"
                        " CPUs with AVX512-BF16 (weights and losses stay fp32)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-minutes", type=float, default=None,
                   help="stop after this long (resume later by running the same command)")
    p.add_argument("--workers", type=int, default=2, help="processes for face alignment")
    p.add_argument("--init", default=None, metavar="MODEL_DIR",
                   help="start from a saved model's weights (same architecture and held-out"
                        " folds), e.g. a second stage on top of the shipped default")
    p.add_argument("--no-progress", action="store_true")
    # each option's default, for command_line (the command that reproduces a run)
    p.set_defaults(_option_defaults={a.dest: a.default for a in p._actions if a.dest != "help"})


def run(args: argparse.Namespace) -> int:
    import torch

    from xfr import registry
    from xfr.data.lfw import default_lfw_root
    from xfr.training.recipe import check_folds, run_default_recipe

    lfw = Path(args.lfw) if args.lfw else default_lfw_root()
    if lfw is None or not (lfw / "pairs.txt").exists():
        raise FileNotFoundError("LFW not found: pass --lfw ROOT (the folder holding pairs.txt)")
    for folder in args.extra:
        if not Path(folder).is_dir():
            raise FileNotFoundError(f"no such folder: {folder}")
    if args.init and not (Path(args.init) / "config.json").exists():
        raise FileNotFoundError(f"--init: not a model folder (no config.json): {args.init}")
    evaluation, calibration = sorted(args.eval_folds), sorted(args.calibration_folds)
    check_folds(evaluation, calibration)
    teacher = registry.create("verifier", args.teacher, flip=False)

    def teacher_embed(x: Any) -> Any:
        return teacher.embed(torch.from_numpy(x)).numpy()

    def student_factory(**arch: Any) -> Any:
        return registry.create("verifier", args.student, **arch)

    arch = json.loads(args.arch) if args.arch else None
    out = Path(args.out)
    command = command_line(args, args._option_defaults)
    result = run_default_recipe(
        student_factory=student_factory, teacher_embed=teacher_embed, teacher_name=args.teacher,
        lfw_root=lfw, extra_folders=args.extra, out=out,
        cache=args.cache or out / "cache", eval_folds=evaluation, calibration_folds=calibration,
        architecture=arch,
        train_config={"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
                      "seed": args.seed, "threads": torch.get_num_threads(),
                      "warmup_steps": args.warmup_steps, "eval_every_steps": args.eval_every,
                      "cosface_weight": args.cosface_weight, "rotate": args.rotate,
                      "scale": args.scale, "jitter": args.jitter, "grayscale": args.grayscale,
                      "blur": args.blur, "jpeg": args.jpeg,
                      "device": args.device or "cpu", "precision": args.precision},
        max_seconds=args.max_minutes * 60 if args.max_minutes else None,
        progress=not args.no_progress, workers=args.workers, extra_limit=args.extra_limit,
        init_from=args.init, command=command)
    print(json.dumps(result, indent=2))
    return 0


def command_line(args: argparse.Namespace, parser_defaults: dict[str, Any]) -> str:
    """``xfr train`` with the options of this run that differ from their defaults (what the
    model card prints to reproduce it); the device and thread count are left out."""
    import shlex

    parts = ["xfr", "train"]
    for key, value in vars(args).items():
        if key.startswith("_") or key in ("command", "debug", "device", "threads",
                                          "no_progress") or key not in parser_defaults:
            continue
        if value == parser_defaults[key]:
            continue
        flag = "--" + key.replace("_", "-")
        if isinstance(value, set):  # folds
            value = ",".join(str(f) for f in sorted(value))
        for item in value if isinstance(value, list) else [value]:
            parts += [flag, str(item)]
    return shlex.join(parts)
