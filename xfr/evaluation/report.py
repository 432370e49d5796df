"""Writing an evaluation's results (paper Sec. 4, Tab. 1 and Fig. 2) into a folder.

Files: ``results.json`` (everything), ``command.txt`` (the exact command line, model, pairs,
seed), ``accuracy.md``, ``table1.md``/``.csv`` (beside the paper's LFW values),
``deletion.md``/``.csv`` (deletion and insertion areas), and the plots
``deletion_positive.png``, ``deletion_negative.png``, ``insertion_positive.png``,
``insertion_negative.png`` (plus ``*_subset.png`` on the baselines' subset).
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import Any

from xfr.evaluation.results import POLARITIES
from xfr.evaluation.table1 import STRATEGIES

LOWER_IS_BETTER = {"deletion": True, "insertion": False}
NAMES = {"oim": "OIM", "um": "UM", "nium": "N-IUM"}


def _write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + f".{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _f(x: Any, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return f"{x:.{digits}f}"


def command_text(r: dict[str, Any]) -> str:
    m, p = r["model"], r["pairs"]
    lines = [
        "# xfr evaluate: how these results were made",
        f"command: {r['command']}",
        f"date: {r['date']}",
        f"xfr: {r['xfr']['version']} (commit {r['xfr']['commit']})",
        f"platform: python {r['platform']['python']}, torch {r['platform']['torch']}",
        f"model: {m['spec']} (kind {m['kind']}, threshold {m['threshold']:.4f}, "
        f"weights sha1 {m['fingerprint']})",
    ]
    prov = (m.get("config") or {}).get("provenance") if isinstance(m.get("config"), dict) else None
    if prov:
        lines.append(f"model provenance: {json.dumps(prov, sort_keys=True)}")
    lines += [
        f"pairs: {p['file']} (format {p['format']}, images {p['root']}, folds {p['folds']}, "
        f"limit {p['limit']}): {p['selected']} selected, {p['verified']} verified (accuracy), "
        f"{p['evaluated']} explained ({p['limit_rule']} when limited), "
        f"{p['true_positives']} true positives, {p['true_negatives']} true negatives, "
        f"{len(p['skipped'])} skipped",
        f"seed: {r['seed']}",
        f"methods: {', '.join(r['methods'])}; generators: {', '.join(r['generators'])}",
        f"method options: {json.dumps(r['options'], sort_keys=True)}",
        f"curve steps (fraction of pixels): {r['fractions']}; curves: "
        f"{', '.join(r.get('curves_computed', []))}",
    ]
    if "subset" in r["curves"]:
        lines.append(f"baselines' subset: {r['baseline_subset']['true_positives']} true "
                     f"positives + {r['baseline_subset']['true_negatives']} true negatives "
                     f"(seeded random draw, limit {r['baseline_subset']['limit']} each)")
    incomplete = {u: c for u, c in r.get("coverage", {}).items() if c["done"] < c["pairs"]}
    lines.append("coverage: " + ", ".join(f"{u} {c['done']}/{c['pairs']} pairs"
                                          for u, c in r.get("coverage", {}).items()))
    if incomplete:
        lines.append("INCOMPLETE: the units above with fewer pairs done than planned are "
                     "reported on the pairs done (--report-only or unfinished shards)")
    return "\n".join(lines) + "\n"


def accuracy_markdown(r: dict[str, Any]) -> str:
    a = r["accuracy"]
    lines = ["# Verification accuracy", "",
             f"{a['pairs']} pairs ({a['genuine']} genuine, {a['impostor']} impostor).", ""]
    k = a["kfold"]
    lines.append(f"## 10-fold threshold selection ({k['protocol']})")
    lines.append("")
    if "skipped" in k:
        lines.append(f"Not computed: {k['skipped']}.")
    else:
        lines += ["| fold | threshold | accuracy |", "|---:|---:|---:|"]
        for i, (acc, th) in enumerate(zip(k["accuracies"], k["thresholds"], strict=True)):
            lines.append(f"| {i + 1} | {th:.2f} | {100 * acc:.2f} % |")
        lines += ["", f"**Mean accuracy: {100 * k['mean']:.2f} % (std {100 * k['std']:.2f})**; "
                      f"best single threshold on all pairs: {k['best_threshold_all']:.2f}."]
    t = a["at_threshold"]
    lines += ["", f"## At the verifier's own threshold ({t['threshold']:.4f})", "",
              "| folds | pairs | accuracy | TPR | TNR |", "|---|---:|---:|---:|---:|"]
    for name, row in [("all", t["all"]), *t["folds"].items()]:
        lines.append(f"| {name} | {row['pairs']} | {100 * row['accuracy']:.2f} % | "
                     f"{100 * row['tpr']:.2f} % | {100 * row['tnr']:.2f} % |")
    if "per_fold_cross" in a:
        lines += ["", "## Per fold, threshold chosen on the other selected folds", "",
                  "| fold | threshold | accuracy |", "|---:|---:|---:|"]
        for f, row in a["per_fold_cross"].items():
            lines.append(f"| {f} | {row['threshold']:.2f} | {100 * row['accuracy']:.2f} % |")
    return "\n".join(lines) + "\n"


def table1_rows(r: dict[str, Any]) -> list[dict[str, Any]]:
    t1 = r["table1"]
    rows = []
    for grouping in ("correct", "decision"):
        for g, cells in t1.get(grouping, {}).items():
            for decision, names in STRATEGIES.items():
                for s in names:
                    c = cells[f"{decision}/{s}"]
                    rows.append({"grouping": grouping, "generator": g, "decision": decision,
                                 "strategy": s,
                                 "paper_lfw_vit_lrp": t1["paper_lfw_vit_lrp"][f"{decision}/{s}"],
                                 "mean": c["estimate"], "ci_low": c["low"], "ci_high": c["high"],
                                 "median": c["median"], "win_rate": c["win_rate"], "n": c["n"],
                                 "missing": c["missing"]})
    return rows


def table1_markdown(r: dict[str, Any]) -> str:
    t1 = r["table1"]
    gens = list(t1.get("correct", {}))
    lines = ["# Table 1: mean selection metric per mask strategy", "",
             "SM+ (eq. 1) over positive pairs, SM- (eq. 2) over negative pairs; mean "
             f"[bootstrap 95 % CI] (n pairs); {r['n_boot']} resamples, seed {r['seed']}. The "
             "paper's column is its LFW value with ViT-LRP maps (its Tab. 1).", ""]
    if not gens:
        return "\n".join(lines + ["Not computed: the paper method was not evaluated."]) + "\n"
    titles = {"correct": "True positives (SM+) and true negatives (SM-)",
              "decision": "Every accepted pair (SM+) and every rejected pair (SM-), "
                          "right or wrong"}
    for grouping in ("correct", "decision"):
        lines += [f"## {titles[grouping]}", "",
                  "| decision | strategy | paper (LFW, ViT-LRP) | "
                  + " | ".join(gens) + " |",
                  "|---|---|---:|" + "---:|" * len(gens)]
        for decision, names in STRATEGIES.items():
            for s in names:
                cells = []
                for g in gens:
                    c = t1[grouping][g][f"{decision}/{s}"]
                    cells.append(f"{_f(c['estimate'])} [{_f(c['low'])}, {_f(c['high'])}] "
                                 f"(n={c['n']})" if c["n"] else "n/a (n=0)")
                paper = t1["paper_lfw_vit_lrp"][f"{decision}/{s}"]
                lines.append(f"| {decision} | {NAMES[s]} | {paper:.2f} | "
                             + " | ".join(cells) + " |")
        lines += ["", "Median and how often each strategy has its pair's largest score "
                      "(the metric selector's choice):", "",
                  "| decision | strategy | " + " | ".join(gens) + " |",
                  "|---|---|" + "---:|" * len(gens)]
        for decision, names in STRATEGIES.items():
            for s in names:
                cells = []
                for g in gens:
                    c = t1[grouping][g][f"{decision}/{s}"]
                    cells.append(f"median {_f(c['median'])}, wins {_f(100 * c['win_rate'], 0)} %"
                                 if c["n"] else "n/a")
                lines.append(f"| {decision} | {NAMES[s]} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines) + "\n"


def curve_rows(r: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for pairset, by_mode in r["curves"].items():
        for mode in by_mode:
            for pol in POLARITIES:
                for method, c in by_mode[mode][pol].items():
                    row = {"pairs": pairset, "curve": mode, "decision": pol, "method": method,
                           "n": c["n"], "missing": c.get("missing", 0), "auc": c.get("auc"),
                           "auc_low": c.get("auc_low"), "auc_high": c.get("auc_high")}
                    for f, v in zip(r["fractions"], c.get("curve", [None] * len(r["fractions"])),
                                    strict=True):
                        row[f"at_{f:.2f}"] = v
                    rows.append(row)
    return rows


def curves_markdown(r: dict[str, Any]) -> str:
    lines = ["# Deletion and insertion curves (Fig. 2)", "",
             "Positive: true positives, the probe's pixels zeroed (deletion) or revealed from a "
             "zeroed image (insertion) in descending heatmap order; the rate is the recall "
             "(pairs still accepted). Negative: true negatives, both faces perturbed by their "
             "own maps; the rate is the TNR (pairs still rejected). Area under the curve over "
             "the fraction axis (trapezoids), [bootstrap 95 % CI over pairs]. Deletion: lower "
             "is more faithful; insertion: higher is more faithful.", ""]
    titles = {"all": "All true positives / true negatives",
              "subset": "The baselines' random subset (every method on the same pairs)"}
    for pairset, by_mode in r["curves"].items():
        lines += [f"## {titles.get(pairset, pairset)}", ""]
        for mode in by_mode:
            for pol in POLARITIES:
                entries = by_mode[mode][pol]
                if not entries:
                    continue
                best = "lower" if LOWER_IS_BETTER[mode] else "higher"
                lines += [f"### {mode}, {pol} pairs ({POLARITIES[pol]}; {best} AUC is better)",
                          "", "| method | n | AUC [95 % CI] | "
                          + " | ".join(f"{f:.0%}" for f in r["fractions"]) + " |",
                          "|---|---:|---:|" + "---:|" * len(r["fractions"])]
                ranked = sorted(entries.items(), key=lambda kv: (
                    kv[1].get("auc") is None,
                    (1 if LOWER_IS_BETTER[mode] else -1) * (kv[1].get("auc") or 0)))
                for method, c in ranked:
                    if not c["n"]:
                        lines.append(f"| {method} | 0 | n/a | "
                                     + " | ".join("" for _ in r["fractions"]) + " |")
                        continue
                    miss = f" (+{c['missing']} without map)" if c.get("missing") else ""
                    lines.append(f"| {method} | {c['n']}{miss} | {_f(c['auc'], 3)} "
                                 f"[{_f(c['auc_low'], 3)}, {_f(c['auc_high'], 3)}] | "
                                 + " | ".join(_f(v, 2) for v in c["curve"]) + " |")
                lines.append("")
    return "\n".join(lines) + "\n"


def _style(method: str, generators: list[str]) -> tuple[Any, str, str]:
    """Colour, line style and marker: one colour per generator (paper OIM solid, its raw
    attention dashed), grey dotted for random, other colours for the baselines."""
    import matplotlib

    palette = matplotlib.colormaps["tab10"].colors
    if method == "random":
        return "0.5", ":", "x"
    for i, g in enumerate(generators):
        if method == f"paper-{g}-oim":
            return palette[i % 10], "-", "o"
        if method == f"attention-{g}":
            return palette[i % 10], "--", "^"
    others = ["minplus", "avg", "rise", "lime"]
    k = others.index(method) if method in others else len(others) + sum(map(ord, method)) % 3
    return palette[(len(generators) + k) % 10], "-.", "s"


def plot_curves(r: dict[str, Any], out: Path) -> list[Path]:
    """One PNG per curve kind and decision (and per pair set)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    x = [100 * f for f in r["fractions"]]
    for pairset, by_mode in r["curves"].items():
        for mode in by_mode:
            for pol in POLARITIES:
                entries = {m: c for m, c in by_mode[mode][pol].items() if c["n"]}
                if not entries:
                    continue
                fig, ax = plt.subplots(figsize=(6.4, 4.6), dpi=110)
                for method, c in entries.items():
                    color, style, marker = _style(method, r["generators"])
                    ax.plot(x, c["curve"], style, color=color, marker=marker, markersize=3,
                            label=f"{method} (AUC {c['auc']:.3f}, n={c['n']})")
                metric = "Recall" if pol == "positive" else "TNR"
                ax.set_xlabel(f"pixels {'removed' if mode == 'deletion' else 'revealed'} (%)")
                ax.set_ylabel(metric)
                ax.set_ylim(-0.02, 1.02)
                ax.set_title(f"{mode.capitalize()}, {pol} decisions ({metric})"
                             + ("" if pairset == "all" else " - baselines' subset"))
                ax.grid(alpha=0.3)
                ax.legend(fontsize=7, loc="best")
                fig.tight_layout()
                name = f"{mode}_{pol}" + ("" if pairset == "all" else f"_{pairset}") + ".png"
                fig.savefig(out / name)
                plt.close(fig)
                written.append(out / name)
    return written


def _csv(path: Path, rows: list[dict[str, Any]]) -> None:
    if not rows:
        _write(path, "")
        return
    keys = list(rows[0])
    for row in rows[1:]:
        keys += [k for k in row if k not in keys]
    tmp = path.with_suffix(path.suffix + f".{os.getpid()}.tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


def _finite(obj: Any) -> Any:
    """``obj`` with NaN/inf floats as ``None`` (strict JSON)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def write_report(r: dict[str, Any], out: str | Path) -> list[Path]:
    """Write every report file of results ``r`` into ``out``; returns the paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "results.json": json.dumps(_finite(r), indent=1, allow_nan=False),
        "command.txt": command_text(r),
        "accuracy.md": accuracy_markdown(r),
        "table1.md": table1_markdown(r),
        "deletion.md": curves_markdown(r),
    }
    for name, text in files.items():
        _write(out / name, text)
    _csv(out / "table1.csv", table1_rows(r))
    _csv(out / "deletion.csv", curve_rows(r))
    written = [out / n for n in files] + [out / "table1.csv", out / "deletion.csv"]
    return written + plot_curves(r, out)


__all__ = ["accuracy_markdown", "command_text", "curves_markdown", "plot_curves",
           "table1_markdown", "write_report"]
