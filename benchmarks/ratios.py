"""Print the Markdown table of benchmarks/test_benchmark_kernels.py: per kernel, image size and
batch, xfr's median time per image and how many times faster xfr is than each other
implementation (their median / xfr's median; > 1: xfr is faster).

    pytest benchmarks/test_benchmark_kernels.py --benchmark-enable --benchmark-json=bench.json
    python benchmarks/ratios.py bench.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

COLUMNS = {  # impl -> column title
    "opencv": "OpenCV",
    "opencv_sep": "OpenCV sepFilter2D",
    "scipy": "SciPy",
    "skimage": "scikit-image",
    "numpy": "NumPy",
}
NOTES = {
    "otsu": "cv2.threshold(OTSU) / skimage threshold_otsu, each on uint8(255 map)",
    "combine": "cv2.bitwise_and / np.logical_and",
    "combine_maps": "union (UM) with cv2.multiply/add / NumPy where",
    "dilate": "cv2.dilate / ndi.maximum_filter, 8x8 ellipse",
    "gaussian": "cv2.filter2D (2-D kernel) / cv2.sepFilter2D / ndi.correlate1d x2, size 56",
    "smooth_heatmap": "normalize -> dilate -> filter2D or sepFilter2D -> normalize; SciPy same",
}


def load(path: Path) -> dict[tuple[str, int, int], dict[str, float]]:
    """(kernel, size, batch) -> {impl: median seconds per call}."""
    data = json.loads(path.read_text())
    table: dict[tuple[str, int, int], dict[str, float]] = {}
    for bench in data.get("benchmarks", []):
        info = bench.get("extra_info", {})
        if not {"kernel", "impl", "size", "batch"} <= set(info):
            continue
        key = (info["kernel"], int(info["size"]), int(info["batch"]))
        table.setdefault(key, {})[info["impl"]] = float(bench["stats"]["median"])
    return table


def machine(path: Path) -> str:
    info = json.loads(path.read_text()).get("machine_info", {})
    cpu = info.get("cpu", {})
    name = cpu.get("brand_raw") or info.get("processor") or "unknown CPU"
    cores = cpu.get("count", "?")
    return f"{name}, {cores} cores, Python {info.get('python_version', '?')}"


def markdown(table: dict[tuple[str, int, int], dict[str, float]]) -> str:
    impls = [i for i in COLUMNS if any(i in row for row in table.values())]
    head = ["kernel", "image", "batch", "xfr per image"] + [f"vs {COLUMNS[i]}" for i in impls]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    order = {k: n for n, k in enumerate(NOTES)}
    for (kernel, size, batch), row in sorted(table.items(),
                                             key=lambda kv: (order.get(kv[0][0], 99), kv[0][1:])):
        if "xfr" not in row:
            continue
        ours = row["xfr"]
        cells = [f"`{kernel}`", f"{size}x{size}", str(batch), _time(ours / batch)]
        cells += [f"{row[i] / ours:.1f}x" if i in row else "" for i in impls]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _time(seconds: float) -> str:
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} us"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", type=Path, help="pytest-benchmark --benchmark-json output")
    args = parser.parse_args(argv)
    table = load(args.json)
    if not table:
        print(f"{args.json}: no kernel benchmarks found", file=sys.stderr)
        return 1
    print(markdown(table))
    print()
    print("Ratios are medians, theirs / xfr's: above 1 means xfr is faster. Competitors: "
          + "; ".join(f"`{k}`: {v}" for k, v in NOTES.items()) + ".")
    print(f"\nMachine: {machine(args.json)}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
