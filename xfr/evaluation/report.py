"""Writing an evaluation's results (paper Sec. 4, Tab. 1 and Fig. 2) into a folder.

Files: ``results.json`` (everything), ``command.txt`` (the exact command line, model, pairs,
seed, and every curve label with the configuration that produced it), ``accuracy.md``,
``table1.md``/``.csv`` (beside the paper's LFW values), ``deletion.md``/``.csv`` (deletion and
insertion curves and areas, as rate and as continuous normalised distance),
``differences.csv`` (paired differences of every method to every reference), and the plots
``deletion_positive.png``, ``deletion_negative.png``, ``insertion_positive.png``,
``insertion_negative.png``, the same with ``_continuous`` (plus ``*_subset`` on the
baselines' subset).
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import Any

from xfr.evaluation.deletion import BETTER
from xfr.evaluation.references import REFERENCES
from xfr.evaluation.results import MIN_PAIRS_FOR_VERDICT, POLARITIES
from xfr.evaluation.table1 import STRATEGIES
from xfr.interfaces.vocabulary import strategy_label

#: The rate curves: deletion lower is better, insertion higher (both decisions).
LOWER_IS_BETTER = {"deletion": True, "insertion": False}
#: ``results.json`` key of each curve kind.
KIND_KEYS = {"rate": "curves", "continuous": "continuous"}
#: Most step columns in a markdown table (every step is in ``deletion.csv``).
MAX_COLUMNS = 11


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
        f"curve steps (fraction of pixels): {len(r['fractions']) - 1} steps, {r['fractions']}; "
        f"curves: {', '.join(r.get('curves_computed', []))}",
    ]
    labels = r.get("labels", {})
    if labels:
        lines.append("curve labels (label: configuration that produced it):")
        lines += [f"  {label}: {configuration_text(doc)}" for label, doc in labels.items()]
    if "subset" in r["curves"]:
        lines.append(f"baselines' subset: {r['baseline_subset']['true_positives']} true "
                     f"positives + {r['baseline_subset']['true_negatives']} true negatives "
                     f"(seeded random draw, limit {r['baseline_subset']['limit']} each)")
        for name, n in r["baseline_subset"].get("method_limits", {}).items():
            lines.append(f"  {name}: the first {n} true positives and {n} true negatives of "
                         "that draw only (--method-limit)")
    incomplete = {u: c for u, c in r.get("coverage", {}).items() if c["done"] < c["pairs"]}
    lines.append("coverage: " + ", ".join(f"{u} {c['done']}/{c['pairs']} pairs"
                                          for u, c in r.get("coverage", {}).items()))
    if incomplete:
        lines.append("INCOMPLETE: the units above with fewer pairs done than planned are "
                     "reported on the pairs done (--report-only or unfinished shards)")
    return "\n".join(lines) + "\n"


def configuration_text(doc: dict[str, Any]) -> str:
    """A label's configuration in one line: ``key=value, ... (unit U; pairs)``."""
    conf = ", ".join(f"{k}={v if isinstance(v, str) else json.dumps(v, sort_keys=True)}"
                     for k, v in doc["configuration"].items())
    return f"{conf} (unit {doc['unit']}; {doc['pairs']})"


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
                lines.append(f"| {decision} | {strategy_label(s)} | {paper:.2f} | "
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
                lines.append(f"| {decision} | {strategy_label(s)} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines) + "\n"


def shown_steps(fractions: list[float], most: int = MAX_COLUMNS) -> list[int]:
    """Indices of the steps a markdown table shows: all when at most ``most``, else the
    multiples of 10 % when the steps hit them, else ``most`` evenly spaced steps."""
    if len(fractions) <= most:
        return list(range(len(fractions)))
    tenths = [i for i, f in enumerate(fractions) if abs(f * 10 - round(f * 10)) < 1e-9]
    if len(tenths) >= 3:
        return tenths
    return sorted({int(round(x)) for x in [k * (len(fractions) - 1) / (most - 1)
                                           for k in range(most)]})


def _step_names(fractions: list[float]) -> list[str]:
    """CSV column names ``at_0.10``...: two decimals, more when needed to tell steps apart."""
    for digits in range(2, 12):
        names = [f"at_{f:.{digits}f}" for f in fractions]
        if len(set(names)) == len(names):
            return names
    return [f"at_{f!r}" for f in fractions]


def _percent(f: float) -> str:
    return f"{100 * f:.3g}%"


def curve_rows(r: dict[str, Any]) -> list[dict[str, Any]]:
    """One CSV row per pair set, curve kind, curve, decision and method: area and mean curve."""
    rows = []
    names = _step_names(r["fractions"])
    for kind, key in KIND_KEYS.items():
        for pairset, by_mode in r.get(key, {}).items():
            for mode in by_mode:
                for pol in POLARITIES:
                    for method, c in by_mode[mode][pol].items():
                        row = {"pairs": pairset, "kind": kind, "curve": mode, "decision": pol,
                               "method": method, "better": BETTER[(kind, mode, pol)],
                               "n": c["n"], "missing": c.get("missing", 0), "auc": c.get("auc"),
                               "auc_low": c.get("auc_low"), "auc_high": c.get("auc_high")}
                        values = c.get("curve", [None] * len(names))
                        row.update(zip(names, values, strict=True))
                        rows.append(row)
    return rows


def difference_rows(r: dict[str, Any]) -> list[dict[str, Any]]:
    """One CSV row per table and (method, reference): the paired AUC difference."""
    rows = []
    for pairset, by_kind in r.get("differences", {}).items():
        for kind, by_mode in by_kind.items():
            for mode, by_pol in by_mode.items():
                for pol, by_method in by_pol.items():
                    for method, by_ref in by_method.items():
                        for ref, d in by_ref.items():
                            rows.append({"pairs": pairset, "kind": kind, "curve": mode,
                                         "decision": pol, "method": method, "reference": ref,
                                         "n": d["n"], "delta": d["delta"], "ci_low": d["low"],
                                         "ci_high": d["high"], "better": d["better"],
                                         "verdict": d["verdict"], "sentence": d["sentence"]})
    return rows


def _cell(d: dict[str, Any] | None) -> str:
    if d is None:
        return ""
    if d["delta"] is None:
        return "n/a (n=0)"
    mark = {"better": " ✓", "worse": " ✗"}.get(d["verdict"], "")
    return f"{_f(d['delta'], 3)} [{_f(d['low'], 3)}, {_f(d['high'], 3)}]{mark}"


KIND_TEXT = {
    "rate": ("Rate", "recall of the true positives / TNR of the true negatives"),
    "continuous": ("Continuous", "mean normalised distance to the unperturbed pair, "
                                 "(d_k - d_0) / threshold"),
}


def curves_markdown(r: dict[str, Any]) -> str:
    refs = sorted({ref for by_kind in r.get("differences", {}).values()
                   for by_mode in by_kind.values() for by_pol in by_mode.values()
                   for by_method in by_pol.values() for row in by_method.values()
                   for ref in row}, key=REFERENCES.index)
    lines = [
        "# Deletion and insertion curves (Fig. 2)", "",
        "Positive: true positives, the probe's pixels zeroed (deletion) or revealed from a "
        "zeroed image (insertion) in descending heatmap order. Negative: true negatives, both "
        "faces perturbed by their own maps. Each curve is read two ways from the same "
        "distances: the **rate** (recall: true positives still accepted; TNR: true negatives "
        "still rejected) and the **continuous** mean normalised distance to the unperturbed "
        "pair, (d_k - d_0) / threshold, where d_k is the pair's distance at step k and d_0 its "
        "unperturbed distance. Area under the curve over the fraction axis (trapezoids), "
        "[bootstrap 95 % CI over pairs].", "",
        "Which area is more faithful:", "",
        "| curve | decision | rate | continuous |", "|---|---|---|---|",
        "| deletion | positive | lower (recall falls) | higher (distance rises) |",
        "| insertion | positive | higher (recall rises) | lower (distance returns) |",
        "| deletion | negative | lower (TNR falls) | lower (faces become alike) |",
        "| insertion | negative | higher (TNR rises) | higher (distance returns) |", "",
    ]
    if refs:
        lines += [
            "Paired differences: for each method and reference (" + ", ".join(refs) + "), "
            "Δ = AUC(method) - AUC(reference), the mean over the pairs both have, with its "
            "bootstrap 95 % CI over those pairs. ✓: the CI lies entirely on the better side "
            "of 0 (the method beats the reference); ✗: entirely on the worse side; otherwise "
            f"no difference is shown (no verdict below {MIN_PAIRS_FOR_VERDICT} pairs). The "
            "same numbers are in differences.csv.", ""]
    labels = r.get("labels", {})
    if labels:
        lines += ["## Curve labels", "", "| label | configuration |", "|---|---|"]
        lines += [f"| {label} | {configuration_text(doc)} |" for label, doc in labels.items()]
        lines.append("")
    titles = {"all": "All true positives / true negatives",
              "subset": "The baselines' random subset (each method on its pairs of it; paired "
              "differences on the pairs both have)"}
    shown = shown_steps(r["fractions"])
    steps = [r["fractions"][i] for i in shown]
    note = ("" if len(shown) == len(r["fractions"]) else
            f" (columns: {len(shown)} of the {len(r['fractions'])} steps; all in deletion.csv)")
    for kind, key in KIND_KEYS.items():
        for pairset, by_mode in r.get(key, {}).items():
            title, what = KIND_TEXT[kind]
            lines += [f"## {title}: {titles.get(pairset, pairset)}", ""]
            for mode in by_mode:
                for pol in POLARITIES:
                    entries = by_mode[mode][pol]
                    if not entries:
                        continue
                    best = BETTER[(kind, mode, pol)]
                    diffs = r.get("differences", {}).get(pairset, {}).get(kind, {}) \
                        .get(mode, {}).get(pol, {})
                    cols = [ref for ref in refs if any(ref in row for row in diffs.values())]
                    metric = POLARITIES[pol] if kind == "rate" else what
                    lines += [f"### {title} {mode}, {pol} pairs ({metric}; {best} AUC is "
                              f"better){note}", "",
                              "| method | n | AUC [95 % CI] | "
                              + "".join(f"Δ vs {ref} [95 % CI] | " for ref in cols)
                              + " | ".join(_percent(f) for f in steps) + " |",
                              "|---|---:|---:|" + "---:|" * (len(cols) + len(steps))]
                    sign = 1 if best == "lower" else -1
                    ranked = sorted(entries.items(), key=lambda kv: (
                        kv[1].get("auc") is None, sign * (kv[1].get("auc") or 0)))
                    for method, c in ranked:
                        delta = "".join(f"{_cell(diffs.get(method, {}).get(ref))} | "
                                        for ref in cols)
                        if not c["n"]:
                            lines.append(f"| {method} | 0 | n/a | {delta}"
                                         + " | ".join("" for _ in steps) + " |")
                            continue
                        miss = f" (+{c['missing']} without map)" if c.get("missing") else ""
                        lines.append(f"| {method} | {c['n']}{miss} | {_f(c['auc'], 3)} "
                                     f"[{_f(c['auc_low'], 3)}, {_f(c['auc_high'], 3)}] | {delta}"
                                     + " | ".join(_f(c["curve"][i], 2) for i in shown) + " |")
                    sentences = ["; ".join(diffs[m][ref]["sentence"] for ref in cols
                                           if ref in diffs[m])
                                 for m, _ in ranked if diffs.get(m)]
                    if sentences:
                        lines += [""] + [f"- {text}." for text in sentences]
                    lines.append("")
    return "\n".join(lines) + "\n"


def _style(label: str, r: dict[str, Any]) -> tuple[Any, str, str]:
    """Colour, line style and marker: one colour per generator (paper heatmap solid, its raw
    attention dashed), greys dotted for the references, other colours for the baselines."""
    import matplotlib

    palette = matplotlib.colormaps["tab10"].colors  # type: ignore[attr-defined]
    generators = r["generators"]
    doc = r.get("labels", {}).get(label, {})
    method = doc.get("method", label)
    refs = {"random": ("0.55", "x"), "random-shared": ("0.3", "+"), "center-blob": ("0.0", "d")}
    if method in refs:
        return refs[method][0], ":", refs[method][1]
    generator = doc.get("configuration", {}).get("generator")
    if method in ("paper", "attention") and generator in generators:
        i = generators.index(generator)
        return palette[i % 10], "-" if method == "paper" else "--", "o" if method == "paper" \
            else "^"
    others = ["minplus", "avg", "rise", "lime"]
    k = others.index(method) if method in others else len(others) + sum(map(ord, method)) % 3
    return palette[(len(generators) + k) % 10], "-.", "s"


def plot_curves(r: dict[str, Any], out: Path) -> list[Path]:
    """One PNG per curve kind, curve and decision (and per pair set): ``deletion_positive.png``
    (rate), ``deletion_positive_continuous.png``, ..."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    x = [100 * f for f in r["fractions"]]
    every = max(1, (len(x) - 1) // 10)
    for kind, key in KIND_KEYS.items():
        for pairset, by_mode in r.get(key, {}).items():
            for mode in by_mode:
                for pol in POLARITIES:
                    entries = {m: c for m, c in by_mode[mode][pol].items() if c["n"]}
                    if not entries:
                        continue
                    fig, ax = plt.subplots(figsize=(6.4, 4.6), dpi=110)
                    for method, c in entries.items():
                        color, style, marker = _style(method, r)
                        ax.plot(x, c["curve"], style, color=color, marker=marker, markersize=3,
                                markevery=every,
                                label=f"{method} (AUC {c['auc']:.3f}, n={c['n']})")
                    metric = "Recall" if pol == "positive" else "TNR"
                    ax.set_xlabel(f"pixels {'removed' if mode == 'deletion' else 'revealed'} (%)")
                    if kind == "rate":
                        ax.set_ylabel(metric)
                        ax.set_ylim(-0.02, 1.02)
                    else:
                        ax.set_ylabel("mean (d_k - d_0) / threshold")
                        ax.axhline(0, color="0.7", linewidth=0.8)
                        metric = "normalised distance change"
                    best = BETTER[(kind, mode, pol)]
                    ax.set_title(f"{mode.capitalize()}, {pol} decisions ({metric}; {best} "
                                 "AUC better)"
                                 + ("" if pairset == "all" else " - baselines' subset"),
                                 fontsize=9)
                    ax.grid(alpha=0.3)
                    ax.legend(fontsize=7, loc="best")
                    fig.tight_layout()
                    name = (f"{mode}_{pol}" + ("" if pairset == "all" else f"_{pairset}")
                            + ("" if kind == "rate" else "_continuous") + ".png")
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
    _csv(out / "differences.csv", difference_rows(r))
    written = [out / n for n in files] + [out / n for n in ("table1.csv", "deletion.csv",
                                                             "differences.csv")]
    return written + plot_curves(r, out)


__all__ = ["KIND_KEYS", "LOWER_IS_BETTER", "MAX_COLUMNS", "accuracy_markdown", "command_text",
           "configuration_text", "curve_rows", "curves_markdown", "difference_rows",
           "plot_curves", "shown_steps", "table1_markdown", "write_report"]
