"""The spatial spread of the paper's default heatmaps on the shipped model, against the width of
the ``center-blob`` reference (xfr.evaluation.references.CENTER_BLOB_SIGMA, measured on the v1
model by ``measure.py``): 40 true positives + 40 true negatives of held-out LFW folds 9-10
(seed 0), the probes' heatmaps of the paper explainer with No-Grad ViT-LRP.

    python reports/lfw/targets/spread.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from xfr import registry
from xfr.evaluation.references import CENTER_BLOB_SIGMA, spatial_spread
from xfr.evaluation.runner import EvalSettings, Evaluation

ROOT = Path(__file__).resolve().parents[3]
LFW = ROOT.parent / "shared" / "data" / "lfw"


def main() -> None:
    ev = Evaluation(EvalSettings(
        pairs=LFW / "pairs.txt", root=LFW, out=ROOT / "cache" / "spread", folds={9, 10},
        limit=300, methods=("random-shared",), cache=ROOT / "cache" / "spread",
        progress=False, report_only=True, baseline_limit=40))
    ev.run()
    pairs = ev.baseline_pairs(40)
    probes, galleries = ev._tensors(pairs)
    explainer = registry.create("explainer", "paper")
    print(f"center-blob sigma: {CENTER_BLOB_SIGMA} px; {len(pairs)} held-out pairs")
    for target in ("similarity", "auto"):
        expl = explainer.explain_pairs(ev.verifier, probes, galleries,
                                       generator="nograd-lrp", target=target)
        maps = np.stack([e.heatmaps for e in expl if e.heatmaps is not None])
        s = spatial_spread(maps[:, 0])
        print(f"target {target}: spread {s.mean():.1f} px (sd {s.std():.1f}, {len(s)} heatmaps)")


if __name__ == "__main__":
    main()
