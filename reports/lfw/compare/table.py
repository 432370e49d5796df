"""The table of reports/lfw/compare/README.md: every method on the comparison's subset, its
pairs, the checks it wins, shows no difference on and loses against ``random-shared`` and
``center-blob`` (8 readings x 2 references; a reference against the other one: 8), and its
areas under the rate curves, from ``deletion.csv`` and ``differences.csv``.

    python reports/lfw/compare/table.py [reports/lfw/compare]
"""

from __future__ import annotations

import csv
import sys
from collections import Counter
from pathlib import Path

REFERENCES = ("random-shared", "center-blob")
RATE_READINGS = (("deletion", "positive"), ("insertion", "positive"),
                 ("deletion", "negative"), ("insertion", "negative"))
VERDICT = {"better": "won", "worse": "worse", "no difference shown": "no difference",
           "too few pairs": "too few pairs"}


def _subset(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return [r for r in csv.DictReader(f) if r["pairs"] == "subset"]


def table(folder: Path) -> str:
    areas = {(r["curve"], r["decision"], r["method"]): r
             for r in _subset(folder / "deletion.csv") if r["kind"] == "rate"}
    methods = list(dict.fromkeys(m for (_, _, m) in areas))
    counts: dict[str, Counter[str]] = {m: Counter() for m in methods}
    for r in _subset(folder / "differences.csv"):
        if r["reference"] in REFERENCES and r["method"] in counts:
            counts[r["method"]][VERDICT[r["verdict"]]] += 1
    lines = ["| method | TP + TN | won | no difference | worse | too few pairs | deletion rate, "
             "positive (lower) | insertion rate, positive (higher) | deletion rate, negative "
             "(lower) | insertion rate, negative (higher) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for m in sorted(methods, key=lambda m: (m in REFERENCES, -counts[m]["won"],
                                            counts[m]["worse"])):
        tp, tn = (areas[("deletion", d, m)]["n"] for d in ("positive", "negative"))
        c = counts[m]
        cells = [f"{float(areas[(curve, d, m)]['auc']):.3f}" for curve, d in RATE_READINGS]
        lines.append(f"| `{m}` | {tp} + {tn} | {c['won']} | {c['no difference']} | "
                     f"{c['worse']} | {c['too few pairs']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent))
