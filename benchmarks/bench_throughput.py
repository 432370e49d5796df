"""Explained pairs per second of one explainer on one device, at each batch size (issue 19).

The model passes of an explanation, measured without the files around them: N held-out LFW
pairs (fold 10, genuine and impostor in turn; aligned once before timing) go to
``explainer.explain_pairs`` in batches of B pairs on the verifier's device, after one warm-up
batch; per batch size it prints seconds, pairs per second and the heatmaps' agreement with the
first batch size (a batch size must not change an explanation). ``--json`` writes the table.

    python benchmarks/bench_throughput.py --device cpu --batch-sizes 1,8,32
    python benchmarks/bench_throughput.py --device cuda --pairs 4096 --batch-sizes 64,256,1024
    python benchmarks/bench_throughput.py --device cuda --method paper --generator nograd-lrp

Not collected by pytest (its name does not start with ``test_``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any


def lfw_faces(lfw: Path, n: int) -> tuple[Any, Any]:
    """Aligned probes and galleries ``(n, 3, 112, 112)`` of ``n`` fold-10 pairs (repeated when
    ``n`` exceeds the fold's 600)."""
    import numpy as np
    from bench_engines import fold10_pairs  # this folder is on sys.path when run as a script
    from PIL import Image

    from xfr.api import prepare, to_tensor

    chosen = fold10_pairs(lfw, n)
    k = len(chosen)
    photos = [np.asarray(Image.open(p.probe).convert("RGB")) for p in chosen]
    photos += [np.asarray(Image.open(p.gallery).convert("RGB")) for p in chosen]
    faces = to_tensor(prepare(photos))
    reps = -(-n // k)
    probes, galleries = faces[:k].repeat(reps, 1, 1, 1)[:n], faces[k:].repeat(reps, 1, 1, 1)[:n]
    return probes, galleries


def main() -> int:
    import numpy as np
    import torch

    from xfr import registry
    from xfr.api import check_device, load_verifier
    from xfr.data.lfw import default_lfw_root

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--pairs", type=int, default=256)
    ap.add_argument("--batch-sizes", default="1,8,32")
    ap.add_argument("--method", default="relevance")
    ap.add_argument("--generator", default=None)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--lfw", type=Path, default=default_lfw_root())
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    if args.lfw is None:
        print("bench_throughput: LFW not found (../shared/data/lfw or $XFR_LFW)", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    device = check_device(args.device)
    sizes = [int(b) for b in args.batch_sizes.split(",")]
    options = {} if args.generator is None else {"generator": args.generator}
    explainer = registry.create("explainer", args.method, **options)
    verifier = load_verifier("default", device=device)
    probes, galleries = lfw_faces(args.lfw, args.pairs)
    probes, galleries = probes.to(device), galleries.to(device)
    rows, first = [], None
    for b in sizes:
        explainer.explain_pairs(verifier, probes[:b], galleries[:b])  # warm-up
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        results = []
        for s in range(0, args.pairs, b):
            results += explainer.explain_pairs(verifier, probes[s:s + b], galleries[s:s + b])
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
        heat = [r.heatmaps for r in results]
        if first is None:
            first, agree = heat, 1.0
        else:
            agree = float(np.mean([a is None and c is None or (
                a is not None and c is not None and np.allclose(a, c, atol=1e-4))
                for a, c in zip(first, heat, strict=True)]))
        rows.append({"batch": b, "pairs": args.pairs, "seconds": round(seconds, 3),
                     "pairs_per_second": round(args.pairs / seconds, 2),
                     "same_heatmaps_as_first": agree})
        print(f"{args.method} on {device}, batch {b}: {seconds:.2f} s, "
              f"{args.pairs / seconds:.1f} pairs/s, heatmaps as batch {sizes[0]}: "
              f"{100 * agree:.0f} %", flush=True)
    best = max(rows, key=lambda r: r["pairs_per_second"])
    print(f"best: batch {best['batch']}, {best['pairs_per_second']} pairs/s")
    if args.json:
        args.json.write_text(json.dumps({"device": device, "method": args.method,
                                         "options": options, "threads": torch.get_num_threads(),
                                         "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
