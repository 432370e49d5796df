"""``xfr evaluate`` with fair references, continuous curves, paired differences, ``--steps``
and labels that say what ran (paper Sec. 4, Fig. 2), on the shipped default model and real LFW
photos: two genuine and two impostor pairs, all decided correctly by the default model."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from xfr.cli import main
from xfr.evaluation.deletion import auc, curve_distances
from xfr.evaluation.references import CENTER_BLOB_SIGMA, REFERENCES, pair_seed, reference_maps
from xfr.evaluation.results import per_pair_curves
from xfr.evaluation.runner import (
    EvalSettings,
    Evaluation,
    paper_defaults,
    paper_labels,
    selector_tag,
)

pytestmark = pytest.mark.slow

PEOPLE = {"Abel_Pacheco": (1, 4), "Akhmed_Zakayev": (1, 3)}
# one fold: two genuine pairs (default-model distances 0.61, 0.37 < 1.27) and two impostor
# pairs (1.62, 1.88 >= 1.27)
PAIRS = """1\t2
Abel_Pacheco\t1\t4
Akhmed_Zakayev\t1\t3
Abel_Pacheco\t1\tAkhmed_Zakayev\t1
Abel_Pacheco\t4\tAkhmed_Zakayev\t3
"""
METHODS = ("paper", "attention", "random", "random-shared", "center-blob", "rise")
COMMON = ("--generators", "rollout", "--bootstrap", "200", "--no-progress")


@pytest.fixture(scope="module")
def lfw6(lfw_root: Path, default_verifier: Any,
         tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Four real LFW pairs in an LFW-style folder, with shared alignment and results caches."""
    base = tmp_path_factory.mktemp("lfw6")
    src = lfw_root / "lfw-deepfunneled"
    if not src.is_dir():
        src = lfw_root
    for name, numbers in PEOPLE.items():
        (base / "images" / name).mkdir(parents=True)
        for n in numbers:
            f = f"{name}_{n:04d}.jpg"
            shutil.copy(src / name / f, base / "images" / name / f)
    (base / "pairs.txt").write_text(PAIRS)
    return {"pairs": base / "pairs.txt", "images": base / "images", "align": base / "aligned",
            "cache": base / "cache", "base": base}


def evaluate(d: dict[str, Path], out: Path, *extra: str, cache: Path | None = None) -> int:
    return main(["evaluate", "--pairs", str(d["pairs"]), "--root", str(d["images"]),
                 "--align-cache", str(d["align"]), "--cache", str(cache or d["cache"]),
                 "--out", str(out), *COMMON, *extra])


@pytest.fixture(scope="module")
def default_run(lfw6: dict[str, Path]) -> dict[str, Any]:
    """The default methods and a RISE baseline (on 1 true positive + 1 true negative),
    2 curve steps (0, 50 %, 100 %: the fewest embeddings)."""
    out = lfw6["base"] / "default"
    assert evaluate(lfw6, out, "--steps", "2", "--methods", ",".join(METHODS),
                    "--option", "rise.n_masks=20", "--baseline-limit", "1") == 0
    return {"out": out, "r": json.loads((out / "results.json").read_text())}


@pytest.fixture(scope="module")
def cached(lfw6: dict[str, Path], default_run: dict[str, Any]) -> dict[str, Any]:
    """The default run's evaluation object (reading the cache only) and its units' records."""
    from xfr.evaluation.deletion import step_fractions

    ev = Evaluation(EvalSettings(
        pairs=lfw6["pairs"], root=lfw6["images"], out=lfw6["base"] / "api", methods=METHODS,
        generators=("rollout",), fractions=step_fractions(2), cache=lfw6["cache"],
        align_cache=lfw6["align"], n_boot=200, progress=False, report_only=True,
        baseline_limit=1, options={"rise": {"n_masks": 20}}))
    ev.run()
    return {"ev": ev, "records": {u.name: ev.run_unit(u) for u in ev.units()}}


def test_default_methods_include_the_fair_references():
    from xfr.evaluation.runner import DEFAULT_METHODS

    assert DEFAULT_METHODS == ("paper", "attention", "random", "random-shared", "center-blob")


def test_references_cover_every_true_positive_and_negative_and_the_baseline_subset(
        default_run):
    r = default_run["r"]
    assert r["pairs"]["true_positives"] == 2 and r["pairs"]["true_negatives"] == 2
    assert r["fractions"] == [0.0, 0.5, 1.0]
    for key in ("curves", "continuous"):
        for mode in ("deletion", "insertion"):
            for pol in ("positive", "negative"):
                every = r[key]["all"][mode][pol]
                subset = r[key]["subset"][mode][pol]
                for ref in REFERENCES:
                    assert every[ref]["n"] == 2 and every[ref]["missing"] == 0, (key, mode, ref)
                    assert subset[ref]["n"] == 1, (key, mode, ref)
                    assert len(every[ref]["curve"]) == 3
                assert "rise" in subset and "rise" not in every
    assert r["coverage"]["random-shared"]["done"] == r["coverage"]["center-blob"]["done"] == 4


def test_reference_curves_are_the_distances_of_the_reference_maps(cached):
    """The cached curves of each reference are those of its maps (random-shared: one map on
    both faces of a true negative, not two), recomputed here directly."""
    from xfr.api import to_tensor

    ev = cached["ev"]
    tn = ev.tn
    probes = to_tensor(np.stack([ev.crops[i.pair.probe] for i in tn]))
    galleries = to_tensor(np.stack([ev.crops[i.pair.gallery] for i in tn]))
    seeds = [pair_seed(0, i.key, "ties") for i in tn]
    got = {}
    for name in REFERENCES:
        records = cached["records"][name]
        maps = reference_maps(name, [i.key for i in tn], 0, (112, 112))
        expected = curve_distances(ev.verifier, probes, galleries, maps[:, 0], maps[:, 1],
                                   fractions=ev.fractions, mode="deletion", seeds=seeds)
        got[name] = np.array([records[i.key]["curves"][name]["deletion"] for i in tn])
        np.testing.assert_allclose(got[name], expected, atol=1e-4)
    # the references differ from each other (a wiring mix-up would make two of them equal)
    assert not np.allclose(got["random"], got["random-shared"], atol=1e-3)
    assert not np.allclose(got["center-blob"], got["random-shared"], atol=1e-3)


def test_the_unperturbed_step_of_every_curve_is_the_verified_distance(cached):
    """The curves reuse the embeddings that verified each pair: the deletion curve starts and
    the insertion curve ends at exactly the pair's decision distance, for every method."""
    ev = cached["ev"]
    checked = 0
    for info in ev.tp + ev.tn:
        e_p, e_g = info.embeddings
        for records in cached["records"].values():
            for curves in records.get(info.key, {}).get("curves", {}).values():
                if not isinstance(curves, dict) or "deletion" not in curves:
                    continue
                assert curves["deletion"][0] == info.distance
                assert curves["insertion"][-1] == info.distance
                checked += 1
        assert e_g.shape == e_p.shape
    assert checked >= 4 * len(REFERENCES)


def test_results_are_keyed_by_the_model_and_the_version_of_the_crops(cached, monkeypatch):
    """Embeddings and unit records live under the model's fingerprint and the alignment
    version: crops made by other alignment code never meet results made from these."""
    import xfr.align

    ev = cached["ev"]
    here = ev.results_root()
    assert here.name == f"{ev.fingerprint[:16]}-a{xfr.align.ALIGNMENT_VERSION}"
    assert (here / "embeddings.npz").is_file()
    assert ev.unit_dir(ev.unit_named("center-blob")).parent == here
    monkeypatch.setattr(xfr.align, "ALIGNMENT_VERSION", xfr.align.ALIGNMENT_VERSION + 1)
    assert ev.results_root() != here and not ev.results_root().exists()


def test_a_unit_embeds_only_the_perturbed_faces(cached, monkeypatch):
    """Recomputing the center-blob unit passes only its perturbed faces through the model (the
    unperturbed ones were embedded once, to verify the pairs; the blank face once per run), and
    gives the cached records."""
    ev = cached["ev"]
    real = ev.verifier.embed
    images: list[int] = []

    def counted(faces):  # type: ignore[no-untyped-def]
        images.append(faces.shape[0])
        return real(faces)

    monkeypatch.setattr(ev.verifier, "embed", counted)
    infos = ev.tp + ev.tn
    blank = 1 if ev._blank is None else 0  # the blank face: once per run
    records = ev.unit_named("center-blob").compute(infos)
    # fractions 0, 0.5, 1: one perturbed step per curve; a true positive perturbs its probe, a
    # true negative both faces
    assert sum(images) == 2 * (len(ev.tp) * 1 + len(ev.tn) * 2) + blank
    for info, rec in zip(infos, records, strict=True):
        assert rec["curves"] == cached["records"]["center-blob"][info.key]["curves"]


def test_continuous_curves_are_read_from_the_cached_distances(cached, default_run):
    r = default_run["r"]
    ev = cached["ev"]
    records = cached["records"]["paper-rollout"]
    th = float(ev.verifier.threshold)
    for pol, group in (("positive", ev.tp), ("negative", ev.tn)):
        for mode in ("deletion", "insertion"):
            d = np.array([records[i.key]["curves"]["heatmap"][mode] for i in group])
            d0 = d[:, 0] if mode == "deletion" else d[:, -1]
            expected = ((d - d0[:, None]) / th).mean(axis=0)
            c = r["continuous"]["all"][mode][pol]["paper-rollout-oim"]
            np.testing.assert_allclose(c["curve"], expected, atol=1e-12)
            assert c["auc"] == pytest.approx(float(auc(ev.fractions, expected)))
            # the unperturbed step is exactly 0; the rate curve is the thresholded one
            assert c["curve"][0 if mode == "deletion" else -1] == 0.0
            rate = r["curves"]["all"][mode][pol]["paper-rollout-oim"]["curve"]
            outcome = (d < th) if pol == "positive" else (d >= th)
            np.testing.assert_allclose(rate, outcome.mean(axis=0))
    # true negatives, insertion from two black faces: distance ~0, so the curve starts near
    # -d_0/threshold, below -1 (each pair was rejected: d_0 >= threshold)
    start = r["continuous"]["all"]["insertion"]["negative"]["random"]["curve"][0]
    assert start == pytest.approx(-np.mean([i.distance for i in ev.tn]) / th, abs=1e-3)
    assert start < -1


def test_paired_differences_are_over_common_pairs_in_json_csv_and_words(cached, default_run):
    r, out = default_run["r"], default_run["out"]
    ev = cached["ev"]
    paper, shared = cached["records"]["paper-rollout"], cached["records"]["random-shared"]
    th = float(ev.verifier.threshold)
    for kind in ("rate", "continuous"):
        for mode in ("deletion", "insertion"):
            for pol, group in (("positive", ev.tp), ("negative", ev.tn)):
                def areas(curves: list[list[float]], group: list[Any] = group,
                          mode: str = mode, kind: str = kind, pol: str = pol) -> np.ndarray:
                    c = per_pair_curves(kind, ev.fractions, np.array(curves),
                                        np.array([i.distance for i in group]), th,
                                        pol == "positive", mode)
                    return auc(ev.fractions, c)

                a = areas([paper[i.key]["curves"]["heatmap"][mode] for i in group])
                b = areas([shared[i.key]["curves"]["random-shared"][mode] for i in group])
                d = r["differences"]["all"][kind][mode][pol]["paper-rollout-oim"]
                assert set(d) == set(REFERENCES)
                got = d["random-shared"]
                assert got["n"] == 2 and got["delta"] == pytest.approx(float(np.mean(a - b)))
                assert got["low"] <= got["delta"] <= got["high"]
                assert got["verdict"] == "too few pairs"  # 2 pairs: numbers, no verdict
                # a reference is compared with the other references, not with itself
                assert set(r["differences"]["all"][kind][mode][pol]["random-shared"]) == {
                    "random", "center-blob"}
                # the baseline on its subset: paired on that subset's one pair
                sub = r["differences"]["subset"][kind][mode][pol]["rise"]["random-shared"]
                assert sub["n"] == 1
    with open(out / "differences.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    row = next(x for x in rows if (x["pairs"], x["kind"], x["curve"], x["decision"], x["method"],
                                   x["reference"]) == ("all", "continuous", "deletion",
                                                       "negative", "paper-rollout-oim",
                                                       "center-blob"))
    want = r["differences"]["all"]["continuous"]["deletion"]["negative"]["paper-rollout-oim"]
    assert float(row["delta"]) == pytest.approx(want["center-blob"]["delta"])
    assert row["better"] == "lower"
    md = (out / "deletion.md").read_text()
    assert "| Δ vs random [95 % CI] | Δ vs random-shared [95 % CI] | Δ vs center-blob" in md
    assert "### Continuous deletion, positive pairs" in md and "higher AUC is better" in md
    assert want["center-blob"]["sentence"] in md
    kinds = {row["kind"] for row in csv.DictReader((out / "deletion.csv").open())}
    assert kinds == {"rate", "continuous"}
    for name in ("deletion_negative_continuous.png", "insertion_positive_subset_continuous.png"):
        assert (out / name).stat().st_size > 0


def test_labels_name_the_selector_and_every_non_default_paper_option(lfw6, default_run,
                                                                     tmp_path):
    r = default_run["r"]
    assert r["labels"]["paper-rollout-oim"]["configuration"]["selector"] == "fixed:oim"
    command = (default_run["out"] / "command.txt").read_text()
    assert "--steps 2" in command and "2 steps, [0.0, 0.5, 1.0]" in command
    lines = [x.strip() for x in command.splitlines()]
    for label in r["labels"]:
        assert any(x.startswith(f"{label}: ") for x in lines), label
    assert "selector=fixed:oim" in next(x for x in lines if x.startswith("paper-rollout-oim: "))
    assert f"sigma {CENTER_BLOB_SIGMA:g} px" in next(x for x in lines
                                                     if x.startswith("center-blob: "))
    assert set(r["curves"]["all"]["deletion"]["positive"]) == {
        "paper-rollout-oim", "attention-rollout", *REFERENCES}
    out = tmp_path / "metric"
    assert evaluate(lfw6, out, "--steps", "2", "--methods", "paper,attention,random-shared",
                    "--option", "paper.selector=metric", "--option", "paper.fill=mean") == 0
    m = json.loads((out / "results.json").read_text())
    label = "paper-rollout-metric+fill=mean"
    assert set(m["curves"]["all"]["deletion"]["positive"]) == {
        label, "attention-rollout", "random-shared"}  # fill does not change attention maps
    assert not any("-oim" in k for k in json.dumps(m["curves"]).split('"'))
    conf = m["labels"][label]["configuration"]
    assert conf["selector"] == "metric" and conf["fill"] == "mean"
    assert conf["generator"] == "rollout"
    command = (out / "command.txt").read_text()
    assert "--option paper.selector=metric --option paper.fill=mean" in command
    line = next(x for x in command.splitlines() if x.strip().startswith(label + ":"))
    assert "selector=metric" in line and "fill=mean" in line and "target=auto" in line
    assert "| paper-rollout-metric+fill=mean | " in (out / "deletion.md").read_text()
    # the metric selector's heatmaps are a different unit from the fixed OIM ones
    assert m["coverage"]["paper-rollout"]["cache"] != r["coverage"]["paper-rollout"]["cache"]
    # the references were not recomputed for the new paper options
    assert m["coverage"]["random-shared"]["cache"] == r["coverage"]["random-shared"]["cache"]


def test_paper_labels_follow_the_configuration():
    defaults = paper_defaults()
    assert paper_labels("rollout", {}, defaults) == ("paper-rollout-oim", "attention-rollout")
    assert paper_labels("vit-lrp", {"selector": "fixed:um"}, defaults)[0] == "paper-vit-lrp-um"
    assert paper_labels("rollout", {"selector": "metric"}, defaults)[0] == "paper-rollout-metric"
    # an option given at its default value changes nothing; speed-only options are not named
    assert paper_labels("rollout", {"fill": "zeros", "batch_size": 8}, defaults) == (
        "paper-rollout-oim", "attention-rollout")
    heat, att = paper_labels("rollout", {"target": "logit", "dilate_size": 4}, defaults)
    assert heat == "paper-rollout-oim+dilate_size=4+target=logit"
    assert att == "attention-rollout+target=logit"  # the target changes the attention maps
    assert selector_tag("fixed") == "oim" and selector_tag("fixed:nium") == "nium"


def test_old_cache_records_with_the_former_curve_keys_are_still_read(lfw6, default_run,
                                                                     tmp_path):
    """Records written before labels carried the configuration kept the paper curves under
    ``paper-<generator>-oim`` / ``attention-<generator>``: the same report comes out."""
    old_cache = tmp_path / "cache"
    shutil.copytree(lfw6["cache"], old_cache)
    renamed = 0
    unit = Path(default_run["r"]["coverage"]["paper-rollout"]["cache"])
    for f in (old_cache / unit.relative_to(lfw6["cache"])).glob("*.json"):
        rec = json.loads(f.read_text())
        curves = rec["curves"]
        if "heatmap" in curves:
            curves["paper-rollout-oim"] = curves.pop("heatmap")
        if "attention" in curves:
            curves["attention-rollout"] = curves.pop("attention")
            renamed += 1
        f.write_text(json.dumps(rec))
    assert renamed == 4
    out = tmp_path / "old"
    assert evaluate(lfw6, out, "--steps", "2", "--methods", ",".join(METHODS),
                    "--option", "rise.n_masks=20", "--baseline-limit", "1", "--report-only",
                    cache=old_cache) == 0
    for name in ("deletion.csv", "differences.csv"):
        assert (out / name).read_text() == (default_run["out"] / name).read_text(), name


def test_steps_or_fractions_and_option_errors_are_one_line(lfw6, tmp_path, capsys):
    o = tmp_path / "o"
    assert evaluate(lfw6, o, "--steps", "2", "--fractions", "0,0.5,1") == 2
    err = capsys.readouterr().err
    assert "not both" in err and len(err.strip().splitlines()) == 1
    assert evaluate(lfw6, o, "--steps", "0,0.5,1") == 2
    assert "--fractions" in capsys.readouterr().err
    assert evaluate(lfw6, o, "--steps", "0") == 2
    assert ">= 1" in capsys.readouterr().err
    assert evaluate(lfw6, o, "--fractions", "0,0.5,0.5") == 2
    assert "increasing" in capsys.readouterr().err
    assert evaluate(lfw6, o, "--option", "paper.generator=vit-lrp") == 2
    assert "--generators" in capsys.readouterr().err
    assert evaluate(lfw6, o, "--option", "paper.selector=bogus") == 2
    assert "selector" in capsys.readouterr().err
    assert evaluate(lfw6, o, "--option", "attention.target=logit") == 2
    assert "paper.target" in capsys.readouterr().err
    assert evaluate(lfw6, o, "--option", "random-shared.grid=3") == 2
    assert "random-shared takes no --option" in capsys.readouterr().err
    assert not o.exists()


def test_method_limit_runs_a_baseline_on_the_first_pairs_of_the_same_draw(lfw6, tmp_path):
    """``--method-limit xssab=1`` runs xSSAB on 1 TP + 1 TN of the ``--baseline-limit 2``
    draw (here every pair); a later run with the full limit reuses those two records and
    adds only the others: the smaller subset is part of the larger one."""
    cache = tmp_path / "cache"
    common = ("--steps", "2", "--methods", "random-shared,xssab", "--baseline-limit", "2")
    assert evaluate(lfw6, tmp_path / "small", *common, "--method-limit", "xssab=1",
                    cache=cache) == 0
    small = json.loads((tmp_path / "small" / "results.json").read_text())
    assert small["coverage"]["xssab"] == {**small["coverage"]["xssab"], "pairs": 2, "done": 2}
    assert small["baseline_subset"]["method_limits"] == {"xssab": 1}
    unit_dir = Path(small["coverage"]["xssab"]["cache"])
    first = {p.name: p.stat().st_mtime_ns for p in unit_dir.glob("*.json")}
    assert len(first) == 2
    assert evaluate(lfw6, tmp_path / "full", *common, cache=cache) == 0
    full = json.loads((tmp_path / "full" / "results.json").read_text())
    assert full["coverage"]["xssab"]["pairs"] == 4 and full["coverage"]["xssab"]["done"] == 4
    after = {p.name: p.stat().st_mtime_ns for p in unit_dir.glob("*.json")}
    assert len(after) == 4 and all(after[k] == t for k, t in first.items())


@pytest.mark.parametrize("item, words", [
    ("xssab=0", "integer >= 1"), ("xssab=3", "above --baseline-limit 2"),
    ("paper=1", "not one of the baseline explainers"), ("xssab", "METHOD=N")])
def test_method_limit_errors_are_one_line_before_any_model_pass(lfw6, tmp_path, capsys, item,
                                                                  words):
    code = evaluate(lfw6, tmp_path / "bad", "--methods", "paper,xssab", "--baseline-limit", "2",
                    "--method-limit", item)
    err = capsys.readouterr().err.strip()
    assert code == 2 and words in err and len(err.splitlines()) == 1


def test_a_baseline_cache_is_keyed_by_its_whole_configuration(lfw6, tmp_path):
    """The cache of an explainer unit is named by every option it runs with, defaults
    included: giving a default explicitly reuses the cache, any other value (or a changed
    default in a new version) starts a fresh one instead of mixing two configurations."""
    from xfr import registry

    default = registry.create("explainer", "relevance").options["sigma"]
    assert default == {"positive": 4.0, "negative": 4.0}

    def unit_folder(options: dict[str, Any], name: str) -> str:
        ev = Evaluation(EvalSettings(
            pairs=lfw6["pairs"], root=lfw6["images"], out=tmp_path / name,
            methods=("random-shared", "relevance"), cache=lfw6["cache"],
            align_cache=lfw6["align"], progress=False, report_only=True,
            options={"relevance": options} if options else {}))
        ev.run()
        return str(ev.coverage["relevance"]["cache"])

    plain = unit_folder({}, "plain")
    assert unit_folder({"sigma": 4.0}, "explicit") == plain
    assert unit_folder({"sigma": 6.0}, "changed") != plain
