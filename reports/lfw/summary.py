"""The summary tables of reports/lfw/README.md from one run's ``deletion.csv`` and
``differences.csv``: per method and reading, the AUC with its paired differences against
``random-shared`` and ``center-blob`` (check marks as in ``deletion.md``), and the count of
checks won, not shown and lost against those two references. With ``--subset``: the table
of reports/lfw/compare/README.md, every method on the run's baselines' subset (its pairs, the
checks won / not shown / lost / without a verdict, its areas under the rate curves).

    python reports/lfw/summary.py reports/lfw/default-full
    python reports/lfw/summary.py reports/lfw/compare --subset
"""

from __future__ import annotations

import csv
import sys
from collections import Counter
from pathlib import Path

REFERENCES = ("random-shared", "center-blob")
READINGS = (("deletion", "positive", "TP deletion"), ("insertion", "positive", "TP insertion"),
            ("deletion", "negative", "TN deletion"), ("insertion", "negative", "TN insertion"))
MARK = {"better": "✓", "worse": "✗"}


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def main(folder: Path) -> None:
    aucs: dict[tuple[str, ...], float] = {}
    for r in _rows(folder / "deletion.csv"):
        key = (r["kind"], r["curve"], r["decision"], r["method"])
        if r["pairs"] == "all" or key not in aucs:  # every pair where a method has them
            aucs[key] = float(r["auc"])
    diffs: dict[tuple[str, ...], dict[str, str]] = {}
    for r in _rows(folder / "differences.csv"):
        key = (r["kind"], r["curve"], r["decision"], r["method"], r["reference"])
        if r["pairs"] == "all" or key not in diffs:  # every pair where a method has them
            diffs[key] = r
    methods = list(dict.fromkeys(m for (_, _, _, m) in aucs))
    verdicts: dict[str, Counter[str]] = {m: Counter() for m in methods}
    for kind in ("rate", "continuous"):
        print(f"\n**{kind}**: AUC (Δ vs random-shared / Δ vs center-blob)\n")
        print("| method | " + " | ".join(label for _, _, label in READINGS) + " |")
        print("|---|" + "---|" * len(READINGS))
        for m in methods:
            cells = []
            for curve, decision, _ in READINGS:
                auc = aucs.get((kind, curve, decision, m))
                parts = []
                for ref in REFERENCES:
                    d = diffs.get((kind, curve, decision, m, ref))
                    if d is None:
                        parts.append("—")
                        continue
                    verdicts[m][d["verdict"]] += 1
                    parts.append(f"{float(d['delta']):+.3f}{MARK.get(d['verdict'], '')}")
                cells.append("n/a" if auc is None else f"{auc:.3f} ({' / '.join(parts)})")
            print(f"| {m} | " + " | ".join(cells) + " |")
    print("\nChecks against random-shared and center-blob (won / no difference shown / lost):\n")
    for m in methods:
        c = verdicts[m]
        print(f"- {m}: {c['better']} / {c['no difference shown']} / {c['worse']}")


def subset_table(folder: Path) -> str:
    """Every method on the baselines' subset, ordered by checks won (the references last)."""
    areas = {(r["curve"], r["decision"], r["method"]): r for r in _rows(folder / "deletion.csv")
             if r["pairs"] == "subset" and r["kind"] == "rate"}
    methods = list(dict.fromkeys(m for (_, _, m) in areas))
    verdicts: dict[str, Counter[str]] = {m: Counter() for m in methods}
    for r in _rows(folder / "differences.csv"):
        if r["pairs"] == "subset" and r["reference"] in REFERENCES and r["method"] in verdicts:
            verdicts[r["method"]][r["verdict"]] += 1
    better = {"deletion": "lower", "insertion": "higher"}
    lines = ["| method | TP + TN | won | no difference | worse | too few pairs | "
             + " | ".join(f"{curve} rate, {decision} ({better[curve]})"
                          for curve, decision, _ in READINGS) + " |",
             "|---|---:|---:|---:|---:|---:|" + "---:|" * len(READINGS)]
    for m in sorted(methods, key=lambda m: (m in REFERENCES, -verdicts[m]["better"],
                                            verdicts[m]["worse"])):
        tp, tn = (areas[("deletion", d, m)]["n"] for d in ("positive", "negative"))
        c = verdicts[m]
        cells = [f"{float(areas[(curve, d, m)]['auc']):.3f}" for curve, d, _ in READINGS]
        lines.append(f"| `{m}` | {tp} + {tn} | {c['better']} | {c['no difference shown']} | "
                     f"{c['worse']} | {c['too few pairs']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    if "--subset" in sys.argv[2:]:
        print(subset_table(Path(sys.argv[1])))
    else:
        main(Path(sys.argv[1]))
