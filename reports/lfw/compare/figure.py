"""Every compared method's heatmaps on the same six held-out LFW pairs (issue 18).

Usage (from the repository root, after the comparison's ``xfr evaluate`` runs; README.md)::

    python reports/lfw/compare/figure.py [--out reports/lfw/compare/six_pairs.png]

The six pairs are the first 3 true positives and the first 3 true negatives of the
comparison's seeded draw (``--seed 0``), so every method of the report, even one run with
``--method-limit``, was measured on them. Each method runs here with the options the report
used (``command.txt``); the perturbation baselines and CorrRISE use their report settings
(RISE at 1,000 masks). Rows: methods; columns: probe and gallery of each pair; each cell the
heatmap over the face's luminance (``xfr.overlay``). The model is the shipped default (v2).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
LFW = ROOT.parent / "shared" / "data" / "lfw"

#: The report's methods and the options they ran with (README.md, command.txt).
EXPLAINERS: dict[str, dict[str, object]] = {
    "relevance": {}, "xssab": {}, "corrrise": {}, "bilrp": {}, "minplus": {}, "avg": {},
    "lime": {}, "rise": {"n_masks": 1000},
}
GENERATORS = ("nograd-lrp", "vit-lrp", "rollout")


def six_pairs() -> tuple[object, list, object, object]:
    """The evaluation of the comparison (cache only) and its first 3 TP + 3 TN."""
    from xfr.evaluation.runner import EvalSettings, Evaluation

    ev = Evaluation(EvalSettings(
        pairs=LFW / "pairs.txt", root=LFW, out=ROOT / "cache" / "figure", folds={9, 10},
        limit=300, methods=("random-shared",), cache=ROOT / "cache" / "eval-lfw-v2",
        align_cache=ROOT / "cache" / "aligned", progress=False, report_only=True))
    ev.run()
    pairs = ev.baseline_pairs(3)
    probes, galleries = ev._tensors(pairs)
    return ev, pairs, probes, galleries


def heatmaps(ev: object, pairs: list, probes: object, galleries: object
             ) -> tuple[dict[str, np.ndarray], dict[str, tuple[float, float]]]:
    """``{label: (6, 2, H, W)}`` heatmaps, and (seconds, model passes) per pair of every
    method (``notes["model_passes"]``)."""
    from xfr import registry
    from xfr.evaluation.references import reference_maps

    maps: dict[str, np.ndarray] = {}
    seconds: dict[str, float] = {}
    passes: dict[str, float] = {}
    blank = np.zeros((2, *probes.shape[-2:]), np.float32)

    def stack(expl: list, attr: str = "heatmaps") -> np.ndarray:
        return np.stack([getattr(e, attr) if getattr(e, attr) is not None else blank
                         for e in expl])

    for name, options in EXPLAINERS.items():
        t = time.perf_counter()
        expl = registry.create("explainer", name, **options).explain_pairs(
            ev.verifier, probes, galleries)
        seconds[name] = (time.perf_counter() - t) / len(pairs)
        passes[name] = float(np.mean([e.notes.get("model_passes", np.nan) for e in expl]))
        maps[name] = stack(expl)
        print(f"{name}: {seconds[name]:.1f} s per pair", flush=True)
    for g in GENERATORS:
        t = time.perf_counter()
        expl = registry.create("explainer", "paper").explain_pairs(
            ev.verifier, probes, galleries, **ev.paper_options(g))
        seconds[f"paper-{g}"] = (time.perf_counter() - t) / len(pairs)
        passes[f"paper-{g}"] = float(np.mean([e.notes.get("model_passes", np.nan)
                                              for e in expl]))
        maps[f"paper-{g}"] = stack(expl)
        maps[f"attention-{g}"] = stack(expl, "attention_maps")
    size = tuple(probes.shape[-2:])
    for ref in ("random-shared", "center-blob"):
        maps[ref] = reference_maps(ref, [i.key for i in pairs], 0, size)
    return maps, {k: (v, passes[k]) for k, v in seconds.items()}


def draw(maps: dict[str, np.ndarray], pairs: list, probes: object, galleries: object,
         out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from xfr.interfaces.images import faces_uint8
    from xfr.overlay import overlay

    faces = [faces_uint8(probes), faces_uint8(galleries)]
    n = len(pairs)
    fig, axes = plt.subplots(len(maps), 2 * n, figsize=(2 * n * 0.9, len(maps) * 0.95))
    for r, (label, m) in enumerate(maps.items()):
        for j in range(n):
            for f in range(2):
                ax = axes[r, 2 * j + f]
                h = m[j, f].astype(np.float32)
                h = (h - h.min()) / max(float(h.max() - h.min()), 1e-12)
                ax.imshow(overlay(faces[f][j], h))
                ax.set_xticks([])
                ax.set_yticks([])
                if r == 0:
                    kind = "TP" if pairs[j].same else "TN"
                    ax.set_title(f"{kind} {j + 1} {'probe' if f == 0 else 'gallery'}",
                                 fontsize=6)
        axes[r, 0].set_ylabel(label, fontsize=6, rotation=0, ha="right", va="center")
    fig.suptitle("The same six held-out LFW pairs (folds 9-10), shipped v2 model", fontsize=8)
    fig.tight_layout(pad=0.2)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=HERE / "six_pairs.png")
    args = ap.parse_args()
    ev, pairs, probes, galleries = six_pairs()
    maps, seconds = heatmaps(ev, pairs, probes, galleries)
    draw(maps, pairs, probes, galleries, args.out)
    lines = ["| method | model passes per pair | seconds per pair (these six pairs) |",
             "|---|---:|---:|"]
    lines += [f"| {k} | {'-' if np.isnan(p) else f'{p:,.0f}'} | {v:.2f} |"
              for k, (v, p) in seconds.items()]
    lines += ["", "Model passes: the explainer's own count (`notes[\"model_passes\"]`), '-' where "
              "it keeps none (README, \"Cost of one explanation\", counts them for every "
              "method). Seconds: wall time of this run, on whatever else the machine was "
              "doing; the benchmark in the README is the measurement."]
    (args.out.with_suffix(".md")).write_text(
        "Pairs: " + ", ".join(f"{'TP' if i.same else 'TN'} {i.pair.probe.name} / "
                              f"{i.pair.gallery.name}" for i in pairs) + "\n\n"
        + "\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
