"""Which heatmap is faithful? Candidate post-processings of the relevance maps, measured with
the deletion/insertion curves of ``xfr evaluate`` against ``random-shared`` and ``center-blob``
on the same held-out LFW pairs and the same model (issue 18: the faithful default).

Usage (from the repository root)::

    python reports/lfw/faithful/explore.py [N_PER_DECISION] [--folds 9,10] [--only NAME,...]

It draws N true positives and N true negatives of the folds (seed 0), computes every
generator's maps once (cached in ``cache/faithful/``), builds each candidate's two heatmaps
per pair, reads the curves through :func:`xfr.evaluation.deletion.curve_distances` exactly as
the evaluation does (same tie seeds, same fractions) and writes ``explore.md`` and
``explore.json`` beside this file: every candidate's area under each curve (rate and
continuous) and the paired difference to each reference with its bootstrap 95 % CI.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]


def load(n: int, folds: set[int]) -> tuple[object, list, torch.Tensor, torch.Tensor]:
    from xfr.evaluation.runner import EvalSettings, Evaluation

    lfw = ROOT.parent / "shared" / "data" / "lfw"
    ev = Evaluation(EvalSettings(pairs=lfw / "pairs.txt", root=lfw, out=ROOT / "cache" / "faithful",
                                 folds=folds, cache=ROOT / "cache" / "eval-lfw-v2",
                                 align_cache=ROOT / "cache" / "aligned", progress=False))
    from xfr.api import load_verifier
    from xfr.interfaces.vocabulary import is_positive

    pairs = ev.load_pairs()
    ev.verifier = load_verifier("default")
    from xfr.evaluation.runner import model_fingerprint

    ev.fingerprint = model_fingerprint(ev.verifier)
    ev.crops, digests = ev.align(pairs)
    infos = ev.verify(ev.verifier, pairs, ev.crops, digests)
    th = float(ev.verifier.threshold)
    rng = np.random.default_rng(0)
    chosen = []
    for positive in (True, False):
        xs = [i for i in infos if i.same == positive and is_positive(i.distance, th) == positive]
        take = sorted(rng.choice(len(xs), min(n, len(xs)), replace=False))
        chosen += [xs[j] for j in take]
    probes, galleries = ev._tensors(chosen)
    return ev, chosen, probes, galleries


def generator_maps(ev: object, name: str, target: str, probes: torch.Tensor,
                   galleries: torch.Tensor, keys: list[str], verifier: object = None
                   ) -> np.ndarray:
    """(N, 2, H, W) raw maps of probe and gallery (cached for the trained model)."""
    import hashlib

    from xfr import registry

    tag = hashlib.sha1(("|".join(keys) + name + target + ev.fingerprint).encode()).hexdigest()[:16]
    path = ROOT / "cache" / "faithful" / f"maps-{name}-{target}-{tag}.npy"
    if verifier is None and path.exists():
        return np.load(path)
    trained = verifier is None
    verifier = ev.verifier if verifier is None else verifier
    gen = (top_blocks_generator(name) if "~" in name else token_generator(name) if "@" in name
           else registry.create("attention", name))
    n = probes.shape[0]
    out = []
    for s in range(0, n, 32):
        p, g = probes[s:s + 32], galleries[s:s + 32]
        faces = torch.cat([p, g])
        ref = None
        if target in ("similarity", "contrast"):
            e = verifier.embed(faces)
            k = p.shape[0]
            ref = torch.cat([e[k:], e[:k]])
            if target == "contrast":
                # the decision's own question: similarity for accepted pairs, dissimilarity
                # (the negated other embedding) for rejected ones
                d = verifier.distance(e[:k], e[k:])
                sign = torch.where(d < float(verifier.threshold), 1.0, -1.0).to(ref)
                ref = ref * torch.cat([sign, sign])[:, None]
        m = np.asarray(gen(verifier, faces, target="similarity" if target == "contrast"
                           else target, reference=ref), dtype=np.float32)
        out.append(np.stack([m[:p.shape[0]], m[p.shape[0]:]], axis=1))
    maps = np.concatenate(out)
    if trained:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, maps)
    return maps


def token_generator(name: str) -> object:
    """``gxi@K``: gradient x input of the tokens entering block ``K`` (summed over channels,
    positive part); ``gnorm@K``: the norm of the gradient there."""
    from xfr_plugins.attention.base import AttentionMapGenerator
    from xfr_plugins.attention.targets import readout
    from xfr_plugins.attention.tracing import run_vit

    kind, block = name.split("@")

    class Tokens(AttentionMapGenerator):
        name = kind

        def patch_scores(self, verifier, images, target, reference):  # type: ignore[no-untyped-def]
            trace = run_vit(verifier, images, requires_grad=True)
            score = readout(verifier, trace.features, target, reference).score
            x = trace.block_inputs[int(block)]
            (g,) = torch.autograd.grad(score.sum(), x)
            with torch.no_grad():
                m = (g * x).sum(-1).clamp(min=0) if kind == "gxi" else g.norm(dim=-1)
            return m[:, trace.num_prefix:]

    return Tokens()


def top_blocks_generator(name: str) -> object:
    """``vit-lrp~K`` / ``grad-rollout~K``: the generator whose rollout starts at block ``K``
    (0-based; Chefer et al.'s ``start_layer``), so the map is made of the upper blocks only;
    ``grad-rollout~noid``: the product of the weighted attentions without the residual
    identity. Only the generators' ``rollout`` step changes."""
    from xfr_plugins.attention.grad_rollout import GradRollout
    from xfr_plugins.attention.rollout import cls_rollout
    from xfr_plugins.attention.vit_lrp import ViTLRP

    base, first = name.split("~")
    parent = {"vit-lrp": ViTLRP, "grad-rollout": GradRollout}[base]

    class Variant(parent):  # type: ignore[misc, valid-type]
        def rollout(self, cams: list[torch.Tensor]) -> torch.Tensor:
            if first == "noid":
                return cls_rollout(cams, add_identity=False)
            return cls_rollout(cams[int(first):])

    return Variant()


def candidate(ev: object, spec: str, probes: torch.Tensor, galleries: torch.Tensor,
              keys: list[str], verifier: object = None) -> np.ndarray:
    """The heatmaps ``(N, 2, H, W)`` of ``GEN-TARGET-HOW-sSIGMA``, or of the explainer
    plugin ``NAME`` for ``explainer:NAME`` (its own defaults)."""
    if spec.startswith("explainer:"):
        from xfr import registry

        v = ev.verifier if verifier is None else verifier
        expl = registry.create("explainer", spec.split(":", 1)[1]).explain_pairs(
            v, probes, galleries)
        return np.stack([e.heatmaps if e.heatmaps is not None else
                         np.zeros((2, *probes.shape[-2:]), np.float32) for e in expl])
    gen_target, how, sig = spec.rsplit("-", 2)
    gen, target = gen_target.rsplit("-", 1)
    raw = generator_maps(ev, gen, target, probes, galleries, keys, verifier)
    return gaussian(shared(raw, how), float(sig[1:]))


def sanity(ev: object, specs: list[str], probes: torch.Tensor, galleries: torch.Tensor,
           keys: list[str], n: int) -> list[str]:
    """Cascading randomisation (Adebayo et al. Sec. 3.1; docs/method.md): mean Spearman of
    each candidate's heatmaps to the trained model's, per step, against the chance level
    (pair i vs pair i+1 under the trained model)."""
    from xfr.evaluation.sanity import cascade_steps, randomised_verifier, spearman

    take = np.linspace(0, probes.shape[0] - 1, n).round().astype(int)
    probes, galleries = probes[take], galleries[take]
    keys = [keys[j] for j in take]
    steps = cascade_steps(ev.verifier)
    lines = ["| candidate | chance | " + " | ".join(f"step {s.index}" for s in steps) + " |",
             "|---|---|" + "---|" * len(steps)]
    for spec in specs:
        ref = candidate(ev, spec, probes, galleries, keys, ev.verifier)
        shift = np.roll(np.arange(len(ref)), -1)

        def rho(a: np.ndarray, b: np.ndarray) -> float:
            return float(np.mean([np.mean([spearman(a[i, f], b[i, f]) for f in range(2)])
                                  for i in range(len(a))]))

        chance = rho(ref, ref[shift])
        cells = []
        for step in steps:
            v = ev.verifier if step.index == 0 else randomised_verifier(ev.verifier, step, 0)
            r = rho(ref, candidate(ev, spec, probes, galleries, keys, v))
            cells.append(f"{r:.3f}{'*' if r < chance else ''}")
        lines.append(f"| {spec} | {chance:.3f} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    return lines


def gaussian(maps: np.ndarray, sigma: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    if sigma <= 0:
        return maps
    return gaussian_filter(maps, sigma=(0,) * (maps.ndim - 2) + (sigma, sigma), mode="nearest")


def unit(m: np.ndarray) -> np.ndarray:
    """Each map scaled to max 1 (min 0)."""
    lo = m.min(axis=(-2, -1), keepdims=True)
    hi = m.max(axis=(-2, -1), keepdims=True)
    return (m - lo) / np.maximum(hi - lo, 1e-12)


def shared(m: np.ndarray, how: str) -> np.ndarray:
    u = unit(m)
    if how == "own":
        return u
    if how == "mean":
        s = u.mean(axis=1)
    elif how == "product":
        s = np.sqrt(u[:, 0] * u[:, 1])
    elif how == "probe":
        s = u[:, 0]
    else:
        raise ValueError(how)
    return np.stack([s, s], axis=1)


def paper_heatmaps(ev: object, probes: torch.Tensor, galleries: torch.Tensor,
                   keys: list[str], **options: object) -> np.ndarray:
    import hashlib

    from xfr import registry

    tag = hashlib.sha1(("|".join(keys) + json.dumps(options, sort_keys=True)
                        + ev.fingerprint).encode()).hexdigest()[:16]
    path = ROOT / "cache" / "faithful" / f"paper-{tag}.npy"
    if path.exists():
        return np.load(path)
    expl = registry.create("explainer", "paper", **options).explain_pairs(
        ev.verifier, probes, galleries)
    h = np.stack([e.heatmaps if e.heatmaps is not None else np.zeros((2, *probes.shape[-2:]),
                                                                       np.float32)
                  for e in expl])
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, h)
    return h


def curves(ev: object, chosen: list, probes: torch.Tensor, galleries: torch.Tensor,
           maps: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    """Per decision and mode: the (N, S) distances."""
    from xfr.evaluation.deletion import DEFAULT_FRACTIONS, curve_distances
    from xfr.evaluation.runner import pair_seed

    out: dict[str, dict[str, np.ndarray]] = {}
    for positive in (True, False):
        idx = [j for j, i in enumerate(chosen) if i.same == positive]
        seeds = [pair_seed(0, chosen[j].key, "ties") for j in idx]
        m = maps[idx].astype(np.float32)
        dec = "positive" if positive else "negative"
        out[dec] = {}
        for mode in ("deletion", "insertion"):
            out[dec][mode] = curve_distances(
                ev.verifier, probes[idx], galleries[idx], m[:, 0],
                None if positive else m[:, 1], fractions=DEFAULT_FRACTIONS, mode=mode,
                seeds=seeds, batch_size=512)
    return out


def areas(ev: object, chosen: list, d: dict[str, dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    from xfr.evaluation.deletion import (
        DEFAULT_FRACTIONS,
        auc,
        continuous_curve,
        rate_curve,
        unperturbed_step,
    )

    th = float(ev.verifier.threshold)
    out = {}
    for dec, modes in d.items():
        for mode, dist in modes.items():
            k = unperturbed_step(DEFAULT_FRACTIONS, mode)
            out[f"{dec}/{mode}/rate"] = auc(DEFAULT_FRACTIONS,
                                           rate_curve(dist, th, dec == "positive"))
            out[f"{dec}/{mode}/continuous"] = auc(DEFAULT_FRACTIONS,
                                                 continuous_curve(dist, dist[:, k], th))
    return out


def verdicts(a: dict[str, np.ndarray], ref: dict[str, np.ndarray]) -> dict[str, list[float]]:
    """Paired difference (method - reference), oriented so that > 0 is better, with CI."""
    from xfr.evaluation.bootstrap import bootstrap_ci
    from xfr.evaluation.deletion import better

    out = {}
    for key, v in a.items():
        dec, mode, kind = key.split("/")
        sign = 1.0 if better(kind, mode, dec) == "higher" else -1.0
        diff = sign * (v - ref[key])
        ci = bootstrap_ci(diff, n_boot=2000, seed=0)
        out[key] = [float(diff.mean()), float(ci.low), float(ci.high)]
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("n", type=int, nargs="?", default=100)
    ap.add_argument("--folds", default="9,10")
    ap.add_argument("--only", default="")
    ap.add_argument("--out", default=str(HERE / "explore"))
    ap.add_argument("--sanity", default="", help="candidates for the randomisation check")
    ap.add_argument("--sanity-pairs", type=int, default=40)
    args = ap.parse_args()
    torch.set_grad_enabled(True)
    ev, chosen, probes, galleries = load(args.n, {int(f) for f in args.folds.split(",")})
    keys = [i.key for i in chosen]
    size = tuple(probes.shape[-2:])
    from xfr.evaluation.references import reference_maps

    if args.sanity:
        lines = sanity(ev, args.sanity.split(","), probes, galleries, keys, args.sanity_pairs)
        Path(args.out + "-sanity.md").write_text("\n".join(lines) + "\n")
        return

    cands: dict[str, Callable[[], np.ndarray]] = {
        "random-shared": lambda: reference_maps("random-shared", keys, 0, size),
        "center-blob": lambda: reference_maps("center-blob", keys, 0, size),
        "paper-nograd-metric": lambda: paper_heatmaps(ev, probes, galleries, keys),
        "paper-nograd-oim": lambda: paper_heatmaps(ev, probes, galleries, keys,
                                                   selector="fixed:oim"),
    }
    for name in ("xssab", "relevance"):
        cands[f"explainer:{name}"] = (lambda nm=name: candidate(ev, f"explainer:{nm}", probes,
                                                                galleries, keys))
    for gen in ("nograd-lrp", "vit-lrp", "grad-rollout"):
        for target in ("embedding", "similarity", "contrast"):
            for how in ("own", "mean", "product"):
                for sigma in (0, 2, 4, 8):
                    name = f"{gen}-{target}-{how}-s{sigma}"
                    cands[name] = (lambda nm=name: candidate(ev, nm, probes, galleries, keys))
    for gen, first in [(g, f) for g in ("vit-lrp", "grad-rollout") for f in ("2", "3", "4")]\
            + [("grad-rollout", "noid")]:  # upper blocks only (Chefer et al.'s start_layer)
        for how in ("own", "mean"):
            for sigma in (2, 4, 8):
                name = f"{gen}~{first}-contrast-{how}-s{sigma}"
                cands[name] = (lambda nm=name: candidate(ev, nm, probes, galleries, keys))
    for gen in ("gxi@0", "gxi@3", "gnorm@0", "gnorm@3"):  # token gradients (x input)
        for how in ("own", "mean"):
            for sigma in (4, 8):
                name = f"{gen}-contrast-{how}-s{sigma}"
                cands[name] = (lambda nm=name: candidate(ev, nm, probes, galleries, keys))
    only = [s for s in args.only.split(",") if s]
    results: dict[str, dict[str, np.ndarray]] = {}
    seconds = {}
    for name, make in cands.items():
        if only and name not in only and name not in ("random-shared", "center-blob"):
            continue
        t = time.perf_counter()
        maps = make()
        results[name] = areas(ev, chosen, curves(ev, chosen, probes, galleries, maps))
        seconds[name] = time.perf_counter() - t
        print(f"{name}: {seconds[name]:.1f} s", flush=True)
    doc = {"pairs": {"positive": sum(i.same for i in chosen),
                     "negative": sum(not i.same for i in chosen)},
           "model": ev.fingerprint, "methods": {}}
    for name, a in results.items():
        doc["methods"][name] = {
            "auc": {k: float(v.mean()) for k, v in a.items()},
            "vs": {r: verdicts(a, results[r]) for r in ("random-shared", "center-blob")
                   if r != name}}
    Path(args.out + ".json").write_text(json.dumps(doc, indent=1))
    keys8 = list(next(iter(results.values())))
    lines = ["| method | wins | " + " | ".join(k.replace("/", " ") for k in keys8) + " |",
             "|---|---|" + "---|" * len(keys8)]
    for name, m in doc["methods"].items():
        cells, wins = [], 0
        for k in keys8:
            marks = ""
            for r in ("random-shared", "center-blob"):
                if r in m["vs"]:
                    mean, lo, hi = m["vs"][r][k]
                    mark = "✓" if lo > 0 else ("✗" if hi < 0 else "·")
                    wins += mark == "✓"
                    marks += mark
            cells.append(f"{m['auc'][k]:.3f} {marks}")
        lines.append(f"| {name} | {wins} | " + " | ".join(cells) + " |")
    Path(args.out + ".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
