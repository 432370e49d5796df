"""Rebuild the control model of ``reports/lfw/control-untrained``: the default model's
architecture with random, untrained weights (``torch.manual_seed(0)``), its threshold set to the
median distance of the LFW folds 9-10 pairs so that about half the pairs are accepted.

    .venv/bin/python reports/lfw/control_model.py cache/control/model
    .venv/bin/xfr evaluate --pairs ../shared/data/lfw/pairs.txt --root ../shared/data/lfw \\
        --folds 9,10 --verifier cache/control/model --methods paper,attention,random \\
        --curves deletion --limit 100 --seed 0 --out reports/lfw/control-untrained
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from xfr import registry
from xfr.align import AlignmentCache
from xfr.api import to_tensor
from xfr.data.lfw import default_lfw_root
from xfr.data.pairs import read_pair_list, select_folds

ARCHITECTURE = {"patch": "conv", "dim": 128, "depth": 6, "heads": 4, "mlp_dim": 512,
                "dropout": 0.05, "attention_scale": "head_dim", "input_norm": "centered",
                "cosface_s": 32.0, "cosface_m": 0.25}


def main(out: str, align_cache: str = "cache/eval-lfw/aligned") -> None:
    root = default_lfw_root()
    if root is None:
        raise SystemExit("LFW not found: set XFR_LFW")
    torch.manual_seed(0)
    v = registry.create("verifier", "face-vit", **ARCHITECTURE)
    pairs = select_folds(read_pair_list(root / "pairs.txt", root), {9, 10})
    cache = AlignmentCache(align_cache)
    files = sorted({f for p in pairs for f in (p.probe, p.gallery)})
    emb = {}
    for s in range(0, len(files), 128):
        chunk = files[s : s + 128]
        e = v.embed(to_tensor(cache.get_many(chunk)))
        emb.update(zip(chunk, e, strict=True))
    d = np.array([float(v.distance(emb[p.probe][None], emb[p.gallery][None])[0]) for p in pairs])
    v.threshold = float(np.median(d))
    v.config.provenance = {
        "what": "control: randomly initialised (torch.manual_seed(0)) default architecture, "
                "untrained",
        "threshold": "median distance of the LFW folds 9-10 pairs",
    }
    v.save(Path(out))
    print(f"saved {out} (threshold {v.threshold:.6f})")


if __name__ == "__main__":
    main(*sys.argv[1:])
