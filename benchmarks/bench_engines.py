"""Throughput of ``xfr explain --pairs`` on the local engine and on Ray (README, "Scale").

Explains the same N LFW pairs (default 200, fold 10, genuine and impostor in turn) twice, into
two fresh folders: with the local engine (this process, PyTorch's threads) and with
``--engine ray`` (a local Ray cluster, or ``--ray-address``), then prints seconds, pairs per
second, seconds per pair per core and the ratio. No figures (``--no-figures``): the model
passes are measured, not matplotlib. Both runs must give the same summaries (timing apart).

    python benchmarks/bench_engines.py --pairs 200 --batch-size 16 --num-cpus 1
    python benchmarks/bench_engines.py --ray-address 10.0.0.1:6379 --num-gpus 1

Not collected by pytest (its name does not start with ``test_``).
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def fold10_pairs(lfw: Path, n: int) -> list[Any]:
    """The first ``n`` LFW fold-10 pairs, genuine and impostor in turn (the benchmarks' pairs:
    held out from the bundled model's training)."""
    from xfr.data.lfw import read_pairs

    fold = [p for p in read_pairs(lfw / "pairs.txt") if p.fold == 10]
    pos, neg = [p for p in fold if p.same], [p for p in fold if not p.same]
    return [x for pair in zip(pos, neg, strict=False) for x in pair][:n]


def write_list(lfw: Path, n: int, path: Path) -> Path:
    """``path``: a CSV of :func:`fold10_pairs`."""
    chosen = fold10_pairs(lfw, n)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["probe", "gallery", "same"])
        w.writerows((p.probe, p.gallery, int(p.same)) for p in chosen)
    return path


def run(listing: Path, out: Path, engine: object, batch: int) -> tuple[float, int]:
    """Seconds of one ``run_batch`` and the pairs it explained."""
    from xfr.batch import BatchSettings, run_batch

    t0 = time.perf_counter()
    result = run_batch(BatchSettings(listing, out, pairs_per_batch=batch, figures=False,
                                     quiet=True), engine)
    return time.perf_counter() - t0, result.total - result.failed


def main() -> int:
    from xfr.data.lfw import default_lfw_root
    from xfr.engines import LocalEngine, RayEngine

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=200)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lfw", type=Path, default=default_lfw_root())
    ap.add_argument("--ray-address", default=None)
    ap.add_argument("--num-cpus", type=float, default=1)
    ap.add_argument("--num-gpus", type=float, default=0)
    ap.add_argument("--workers", type=int, default=None)
    a = ap.parse_args()
    if a.lfw is None:
        print("LFW not found: --lfw DIR or $XFR_LFW", file=sys.stderr)
        return 2
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="xfr-bench-") as tmp:
        listing = write_list(a.lfw, a.pairs, Path(tmp) / "pairs.csv")
        ray = RayEngine(address=a.ray_address, num_cpus=a.num_cpus, num_gpus=a.num_gpus,
                        workers=a.workers)
        ray.start()  # the cluster start is not part of the run
        local_s, n = run(listing, Path(tmp) / "local", LocalEngine(), a.batch_size)
        ray_s, m = run(listing, Path(tmp) / "ray", ray, a.batch_size)
        same = _rows(Path(tmp) / "local") == _rows(Path(tmp) / "ray")
        ray_cores = ray.pool_size() * a.num_cpus
        print(f"pairs: {n} (local), {m} (ray); batch {a.batch_size}; machine cores: {cores}")
        print(f"local: {local_s:8.1f} s  {n / local_s:6.3f} pairs/s  "
              f"{local_s * cores / n:6.2f} core-s/pair ({cores} cores)")
        print(f"ray:   {ray_s:8.1f} s  {m / ray_s:6.3f} pairs/s  "
              f"{ray_s * ray_cores / m:6.2f} core-s/pair ({ray.describe()})")
        print(f"throughput ratio ray/local: {(m / ray_s) / (n / local_s):.2f}")
        print(f"same summaries (timing apart): {same}")
    return 0


def _rows(out: Path) -> list[dict[str, str]]:
    with open(out / "summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r.pop("seconds")
    return rows


if __name__ == "__main__":
    sys.exit(main())
