"""Which target should the attention generators explain on a verifier without an identity
head? (docs/method.md, "Targets"). Measured on held-out LFW folds 9-10 with the shipped model:

1. numerical noise: Spearman between each face's map computed in float32 and in float64
   (20 faces, every generator, every target);
2. faithfulness: deletion and insertion AUCs (rate and continuous) of the paper explainer's
   default heatmap under each target, on the same true positives and true negatives, with the
   paired difference between the targets (bootstrap 95 % CI).

3. the mean spatial spread of the default heatmaps (nograd-lrp, default target), which sets
   the width of the ``center-blob`` reference (xfr.evaluation.references.spatial_spread).

Run from the repository root:  python reports/lfw/targets/measure.py [N_PER_CLASS]
Writes reports/lfw/targets/targets.json and targets.md.
"""

from __future__ import annotations

import copy
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from xfr import registry
from xfr.align import AlignmentCache
from xfr.api import load_verifier, to_tensor
from xfr.data.pairs import read_pair_list, select_folds
from xfr.evaluation.bootstrap import bootstrap_ci
from xfr.evaluation.deletion import DEFAULT_FRACTIONS, auc, curve_distances, rate_curve
from xfr.evaluation.references import spatial_spread
from xfr.interfaces.vocabulary import is_positive

HERE = Path(__file__).parent
LFW = Path("../shared/data/lfw")
GENERATORS = ("rollout", "vit-lrp", "nograd-lrp")
TARGETS = ("embedding", "similarity")


def crops_of(pairs, cache):
    probes = to_tensor(np.stack([cache.get(p.probe) for p in pairs]))
    galleries = to_tensor(np.stack([cache.get(p.gallery) for p in pairs]))
    return probes, galleries


def float_noise(verifier, faces, refs):
    v64 = copy.deepcopy(verifier)
    v64.model.double()
    out = {}
    for g, precision in [(g, p) for g in GENERATORS for p in ("model", "default")]:
        if precision == "model" and g == "rollout":
            continue  # rollout computes in the model's dtype anyway
        options = {"precision": "model"} if precision == "model" else {}
        gen = registry.create("attention", g, **options)
        for t in TARGETS:
            ref32 = refs if t == "similarity" else None
            m32 = gen(verifier, faces, target=t, reference=ref32).numpy()
            ref64 = refs.double() if t == "similarity" else None
            m64 = gen(v64, faces.double(), target=t, reference=ref64).numpy()
            rho = [float(spearmanr(a.ravel(), b.ravel())[0]) for a, b in zip(m32, m64, strict=True)]
            key = f"{g}/{t}" + (" (model's float32)" if precision == "model" else "")
            out[key] = {"min": min(rho), "mean": float(np.mean(rho))}
            print(key, out[key], flush=True)
    return out


def curves(verifier, probes, galleries, maps, positive, mode):
    d = curve_distances(verifier, probes, galleries, maps[:, 0],
                        None if positive else maps[:, 1], mode=mode,
                        seeds=list(range(len(probes))))
    th = float(verifier.threshold)
    rate = auc(DEFAULT_FRACTIONS, rate_curve(d, th, positive))
    d0 = verifier.distance(verifier.embed(probes), verifier.embed(galleries)).double().numpy()
    cont = auc(DEFAULT_FRACTIONS, (d - d0[:, None]) / th)
    return rate, cont


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    float_only = "--float-only" in sys.argv
    torch.manual_seed(0)
    verifier = load_verifier("default")
    pairs = select_folds(read_pair_list(LFW / "pairs.txt", LFW), {9, 10})
    cache = AlignmentCache(Path("cache/aligned"))
    probes, galleries = crops_of(pairs, cache)
    with torch.no_grad():
        e_p, e_g = verifier.embed(probes), verifier.embed(galleries)
        dist = verifier.distance(e_p, e_g).numpy()
    th = float(verifier.threshold)
    same = np.array([p.same for p in pairs])
    rng = np.random.default_rng(0)
    accepted = is_positive(dist, th)
    tp = np.flatnonzero(same & accepted)
    tn = np.flatnonzero(~same & ~accepted)
    tp, tn = np.sort(rng.choice(tp, n, replace=False)), np.sort(rng.choice(tn, n, replace=False))
    report = {"pairs": {"tp": int(len(tp)), "tn": int(len(tn))}, "model": "xfr/models/default"}

    first = tp[:5].tolist() + tn[:5].tolist()  # 20 faces
    faces = torch.cat([probes[first], galleries[first]])
    refs = torch.cat([e_g[first], e_p[first]])
    report["float32_vs_float64_spearman"] = float_noise(verifier, faces, refs)
    if float_only:
        (HERE / "float.json").write_text(json.dumps(report, indent=1))
        return

    explainer = registry.create("explainer", "paper")
    results = {}
    spreads = []
    for g in ("vit-lrp", "nograd-lrp"):
        for t in TARGETS:
            t0 = time.perf_counter()
            row = {}
            for name, idx, positive in (("tp", tp, True), ("tn", tn, False)):
                expl = explainer.explain_pairs(verifier, probes[idx], galleries[idx],
                                               generator=g, target=t)
                keep = [i for i, e in enumerate(expl) if e.heatmaps is not None]
                maps = np.stack([expl[i].heatmaps for i in keep])
                if g == "nograd-lrp" and t == "similarity":
                    spreads += spatial_spread(maps[:, 0]).tolist()
                sel = idx[keep]
                for mode in ("deletion", "insertion"):
                    rate, cont = curves(verifier, probes[sel], galleries[sel], maps, positive,
                                        mode)
                    row[f"{name}/{mode}"] = {"pairs": sel.tolist(), "rate": rate.tolist(),
                                             "continuous": cont.tolist()}
            results[f"{g}/{t}"] = row
            print(g, t, f"{time.perf_counter() - t0:.0f}s", flush=True)

    table = []
    for g in ("vit-lrp", "nograd-lrp"):
        for key in results[f"{g}/embedding"]:
            a, b = results[f"{g}/embedding"][key], results[f"{g}/similarity"][key]
            common = sorted(set(a["pairs"]) & set(b["pairs"]))
            for kind in ("rate", "continuous"):
                va = np.array([a[kind][a["pairs"].index(p)] for p in common])
                vb = np.array([b[kind][b["pairs"].index(p)] for p in common])
                diff = bootstrap_ci(vb - va, n_boot=2000)
                table.append({"generator": g, "curve": key, "kind": kind, "n": len(common),
                              "embedding": float(va.mean()), "similarity": float(vb.mean()),
                              "similarity_minus_embedding": diff.to_dict()})
    report["auc"] = table
    report["heatmap_spread"] = {"mean": float(np.mean(spreads)), "std": float(np.std(spreads)),
                                "n": len(spreads)}
    print("spread", report["heatmap_spread"], flush=True)
    (HERE / "targets.json").write_text(json.dumps(report, indent=1))
    lines = ["# Targets on a headless verifier (held-out LFW folds 9-10, shipped model)", "",
             "Float32 vs float64 maps, Spearman over 20 faces (min / mean):", "",
             "| generator / target | min | mean |", "|---|---:|---:|"]
    for k, v in report["float32_vs_float64_spearman"].items():
        lines.append(f"| {k} | {v['min']:.4f} | {v['mean']:.4f} |")
    lines += ["", "Paper explainer (metric selector), per-pair AUC means and the paired "
              "difference similarity - embedding (95 % bootstrap CI):", "",
              "| generator | curve | kind | n | embedding | similarity | difference [CI] |",
              "|---|---|---|---:|---:|---:|---|"]
    for r in table:
        d = r["similarity_minus_embedding"]
        lines.append(f"| {r['generator']} | {r['curve']} | {r['kind']} | {r['n']} | "
                     f"{r['embedding']:.3f} | {r['similarity']:.3f} | {d['estimate']:+.3f} "
                     f"[{d['low']:+.3f}, {d['high']:+.3f}] |")
    sp = report["heatmap_spread"]
    lines += ["", f"Spatial spread of the default heatmaps (nograd-lrp, similarity): mean "
              f"{sp['mean']:.1f} px (sd {sp['std']:.1f}, {sp['n']} pairs)."]
    (HERE / "targets.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
